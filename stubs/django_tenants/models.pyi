from typing import Any

from django.db import models

class TenantMixin(models.Model):
    schema_name: models.CharField[str, str]
    auto_drop_schema: bool
    auto_create_schema: bool
    domain_url: str
    def save(self, verbosity: int = ..., *args: Any, **kwargs: Any) -> None: ...
    def _drop_schema(self, force_drop: bool = ...) -> None: ...
    def serializable_fields(self) -> Any: ...
    def create_schema(self, check_if_exists: bool = ..., sync_schema: bool = ..., verbosity: int = ...) -> bool: ...

class DomainMixin(models.Model):
    domain: models.CharField[str, str]
    tenant: models.ForeignKey[Any, Any]
    is_primary: models.BooleanField[bool, bool]

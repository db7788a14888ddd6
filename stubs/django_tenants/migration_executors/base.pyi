from collections.abc import Iterable
from typing import Any

def run_migrations(
    args: tuple[Any, ...],
    options: dict[str, Any],
    executor_codename: str,
    schema_name: str,
    tenant_type: str = ...,
    allow_atomic: bool = ...,
    idx: int | None = ...,
    count: int | None = ...,
) -> None: ...

class MigrationExecutor:
    codename: str | None
    args: tuple[Any, ...]
    options: dict[str, Any]
    PUBLIC_SCHEMA_NAME: str
    TENANT_DB_ALIAS: str
    def __init__(self, args: tuple[Any, ...], options: dict[str, Any]) -> None: ...
    def run_migrations(self, tenants: Iterable[str] | None = ...) -> None: ...

"""Public-schema models: a ``Community`` (tenant, owning one schema) and its ``Domain`` names."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower
from django_tenants.models import DomainMixin, TenantMixin

from core.schema import SLUG_PATTERN
from tenants.validators import RESERVED_SLUGS


class CommunityStatus(models.TextChoices):
    """Lifecycle of a community."""

    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    OFFBOARDED = "offboarded", "Offboarded"


class Community(TenantMixin):
    """A research community: one tenant, one PostgreSQL schema named after its slug."""

    slug = models.CharField(max_length=40, unique=True)
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=CommunityStatus.choices, default=CommunityStatus.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)

    # Schemas are created by community_create and never dropped by a stray delete().
    auto_create_schema = True
    auto_drop_schema = False

    class Meta:
        verbose_name_plural = "communities"
        ordering: ClassVar[list[str]] = ["slug"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            # The database refuses a schema name that could break out of
            # django-tenants' SQL, whatever code path tries to insert it.
            models.CheckConstraint(
                condition=Q(slug__regex=SLUG_PATTERN)
                & ~Q(slug__startswith="pg_")
                & ~Q(slug__in=sorted(RESERVED_SLUGS))
                & Q(schema_name=F("slug")),
                name="community_slug_is_safe_schema_name",
            ),
            models.CheckConstraint(
                condition=Q(status__in=CommunityStatus.values),
                name="community_status_is_known",
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    @property
    def is_active(self) -> bool:
        """Whether requests to this community may be served."""
        return self.status == CommunityStatus.ACTIVE


class Domain(DomainMixin):
    """A host name that resolves to a community."""

    class Meta:
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.CheckConstraint(condition=Q(domain=Lower("domain")), name="domain_is_lowercase"),
        ]

    def __str__(self) -> str:
        return self.domain

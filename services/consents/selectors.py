"""Which scopes a participant's consents cover now: what the policy is told, and how lists are narrowed."""

from __future__ import annotations

from typing import Any, TypeVar

from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import Exists, F, Func, Model, OuterRef, QuerySet

from services.consents.models import Consent

M = TypeVar("M", bound=Model)


def active_scopes(participant_id: Any) -> list[str]:
    """The scopes of the participant's consents that are not withdrawn, sorted."""
    scopes: set[str] = set()
    for granted in Consent.objects.filter(participant_id=participant_id, withdrawn_at__isnull=True).values_list(
        "scopes", flat=True
    ):
        scopes.update(granted)
    return sorted(scopes)


def active_scopes_column(*, participant_field: str = "pk") -> ArraySubquery:
    """The participant's active consent scopes, distinct and sorted, as one column of the query."""
    return ArraySubquery(
        Consent.objects.filter(participant=OuterRef(participant_field), withdrawn_at__isnull=True)
        .annotate(scope=Func(F("scopes"), function="unnest"))
        .values("scope")
        .distinct()
        .order_by("scope")
    )


def covered_by_consent(queryset: QuerySet[M], scope: Any, *, participant_field: str = "pk") -> QuerySet[M]:
    """Rows whose participant (``participant_field``) holds a consent, not withdrawn, covering ``scope``."""
    covering = Consent.objects.filter(
        participant=OuterRef(participant_field), withdrawn_at__isnull=True, scopes__contains=[str(scope)]
    )
    return queryset.filter(Exists(covering))

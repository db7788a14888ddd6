"""Every factory builds its row in the community it is given, and in no other."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db.models import Model
from django_tenants.utils import schema_context

from tenants.models import Community
from tests.factories import (
    AuditExportFactory,
    BreakGlassGrantFactory,
    ConsentFactory,
    DeidentifiedExportFactory,
    ObservationFactory,
    ParticipantFactory,
    StudyFactory,
    StudyTeamMemberFactory,
    TenantFactory,
)

BUILDS: list[tuple[type[TenantFactory[Any]], dict[str, Any]]] = [
    (StudyFactory, {}),
    (StudyTeamMemberFactory, {"user_id": uuid.uuid4()}),
    (ParticipantFactory, {}),
    (ConsentFactory, {}),
    (ObservationFactory, {}),
    (DeidentifiedExportFactory, {"requested_by": "someone"}),
    (AuditExportFactory, {"requested_by": "someone"}),
    (BreakGlassGrantFactory, {"user_id": uuid.uuid4(), "scope_id": str(uuid.uuid4())}),
]


def exists_in(schema: str, row: Model) -> bool:
    with schema_context(schema):
        return type(row)._default_manager.filter(pk=row.pk).exists()


@pytest.mark.parametrize(("factory", "fields"), BUILDS, ids=lambda value: getattr(value, "__name__", ""))
def test_a_factory_builds_in_the_community_it_is_given_only(
    factory: type[TenantFactory[Any]], fields: dict[str, Any], alpha: Community, beta: Community
) -> None:
    in_beta = factory.create(community=beta, **fields)

    assert exists_in("beta", in_beta)
    assert not exists_in("alpha", in_beta)

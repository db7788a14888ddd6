"""A row written in one community's schema is invisible from another's."""

from __future__ import annotations

from django.db import connection
from django_tenants.utils import schema_context

from services.studies.models import Study
from tenants.models import Community


def test_a_study_written_in_alpha_is_invisible_from_beta(alpha: Community, beta: Community) -> None:
    with schema_context(alpha.schema_name):
        Study.objects.create(title="Sleep and memory", protocol_number="ALPHA-001")
        assert Study.objects.filter(protocol_number="ALPHA-001").count() == 1

    with schema_context(beta.schema_name):
        assert not Study.objects.filter(protocol_number="ALPHA-001").exists()
        assert Study.objects.count() == 0


def test_each_community_has_its_own_table(alpha: Community, beta: Community) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'studies_study' ORDER BY 1"
        )
        schemas = [row[0] for row in cursor.fetchall()]
    assert schemas == ["alpha", "beta"]

"""Cleaning up after tests that commit for real (served over HTTP, or dumped with pg_dump).

Their rows are not rolled back, and the audit tables refuse DELETE while their
guards are on; :func:`empty_community_tables` turns the user triggers off for
the delete alone, in a test database only.
"""

from __future__ import annotations

from django.db import connection
from django_tenants.utils import schema_context

# Everything a walkthrough writes in a community's schema, children before parents.
WRITTEN_TABLES = (
    "exports_exportdetermination",
    "exports_deidentifiedexport",
    "observations_observation",
    "consents_consent",
    "participants_participant",
    "studies_studyteammember",
    "studies_study",
    "audit_auditevent",
    "audit_pendingevent",
    "audit_checkpoint",
    "policy_decisionrecord",
)
# What the platform's own log holds (the public schema): user and lifecycle events.
AUDIT_TABLES = ("audit_auditevent", "audit_pendingevent", "audit_checkpoint")


def empty_community_tables(schema: str, tables: tuple[str, ...] = WRITTEN_TABLES) -> None:
    """Delete every row of ``tables`` in ``schema`` (test-only: triggers off for the delete)."""
    with schema_context(schema), connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")  # test-only, constant names
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")

"""The consent-scope triggers resolve their tables in their own community's schema, whoever writes.

A PL/pgSQL function looks up the unqualified names in its body on the caller's
``search_path``: an operator who updates ``alpha.participants_participant``
with ``beta`` on the path would have had alpha's participant given beta's
consents. Each function is pinned to the schema it was created in (the
migration runs in that schema), as the audit log's functions are
(``audit/0006``), which also keeps them correct on a node that holds only
this schema (docs/operations/sharding.md).
"""

from django.db import migrations

FUNCTIONS = ("participant_consent_scopes()", "consent_refresh_participant()")

FORWARD = (
    "DO $$\nBEGIN\n"
    + "".join(
        f"    EXECUTE format('ALTER FUNCTION {function} SET search_path = %I, pg_temp', current_schema());\n"
        for function in FUNCTIONS
    )
    + "END;\n$$;"
)

BACKWARD = "".join(f"ALTER FUNCTION {function} RESET search_path;\n" for function in FUNCTIONS)


class Migration(migrations.Migration):
    dependencies = [("consents", "0004_consent_authorization_confirmation")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

"""The staged-entry check as one expression: the same rules, a fraction of the cost on a new connection.

``audit_stage_check()`` (migration 0006) ran some twenty ``IF`` statements, and
PL/pgSQL plans each expression the first time a session runs it: a connection
that stages its first event paid about 3.9 ms of database time for that, on
every request where connections are not reused (gunicorn with
``DATABASE_CONN_MAX_AGE=0``). The rules are now one ``CASE`` that names the
first field at fault, planned once: about 1.7 ms on a new connection, the same
0.3 to 0.5 ms afterwards, and the same refusals with the same messages
(``tests/security/audit/test_staging_guards.py`` tries each).
"""

import importlib

from django.db import migrations

_GUARDS = importlib.import_module("security.audit.migrations.0006_database_guards_without_session_settings")
TEXT_LIMITS: dict[str, int] = _GUARDS.TEXT_LIMITS
LISTS: dict[str, int] = _GUARDS.LISTS
KEYS: list[str] = _GUARDS.KEYS

_FAULTS = [
    "        WHEN jsonb_typeof(e) IS DISTINCT FROM 'object'\n"  # nosec B608 - constants
    f"""          OR (SELECT array_agg(key ORDER BY key COLLATE "C") FROM jsonb_object_keys(e) key) <> ARRAY{KEYS!r}::text[]\n"""
    "          THEN 'not a staged audit entry'",
    *(
        f"        WHEN jsonb_typeof(e -> '{name}') IS DISTINCT FROM 'string' OR length(e ->> '{name}') > {limit} "
        f"THEN 'staged audit entry: {name}'"
        for name, limit in TEXT_LIMITS.items()
    ),
    *(
        f"        WHEN jsonb_typeof(e -> '{name}') IS DISTINCT FROM 'array' OR EXISTS (SELECT 1 FROM "  # nosec B608 - constants
        f"jsonb_array_elements(e -> '{name}') item WHERE jsonb_typeof(item) <> 'string' OR length(item #>> '{{}}') "
        f"> {limit}) THEN 'staged audit entry: {name}'"
        for name, limit in LISTS.items()
    ),
    """        WHEN (e ->> 'outcome') NOT IN ('allow', 'deny') OR jsonb_typeof(e -> 'break_glass') <> 'boolean'
          OR jsonb_typeof(e -> 'http_status') <> 'number' THEN 'staged audit entry: outcome, break_glass or http_status'""",
    """        WHEN (e ->> 'http_status')::numeric NOT BETWEEN 0 AND 32767 OR (e ->> 'http_status')::numeric % 1 <> 0
          THEN 'staged audit entry: http_status'""",
    "        WHEN jsonb_typeof(e -> 'occurred_at') NOT IN ('null', 'string') THEN 'staged audit entry: occurred_at'",
]

FORWARD = (
    """
CREATE OR REPLACE FUNCTION audit_stage_check() RETURNS trigger AS $$
DECLARE
    e jsonb := NEW.entry::jsonb;  -- not JSON (or a lone surrogate, or NUL): refused here
    fault text;
BEGIN
    -- One expression, planned once per session; CASE stops at the first field at fault.
    fault := CASE
"""
    + "\n".join(_FAULTS)
    + """
    END;
    IF fault IS NOT NULL THEN
        RAISE EXCEPTION '%', fault USING ERRCODE = 'check_violation';
    END IF;
    NEW.staged_at := clock_timestamp();  -- the database's clock as it stages, whatever the writer sent
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""
)

# Back to 0006's function, exactly as that migration writes it.
_START = _GUARDS.FORWARD.index("CREATE OR REPLACE FUNCTION audit_stage_check()")
BACKWARD = _GUARDS.FORWARD[_START : _GUARDS.FORWARD.index("$$ LANGUAGE plpgsql;", _START) + len("$$ LANGUAGE plpgsql;")]


class Migration(migrations.Migration):
    dependencies = [("audit", "0007_purge_statements_and_witness_receipts")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

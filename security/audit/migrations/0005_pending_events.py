"""Staged events: a request commits its event unchained, and the sequencer chains staged events in batches.

The staging table is append-only as well, except for the one DELETE the
sequencer makes in the transaction that chains the rows (the transaction-local
setting ``audit.chaining``). The purge rule of 0004 is kept as it was.
"""

from django.db import migrations, models

FORWARD = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger AS $$
DECLARE
    purge_through text := current_setting('audit.purge_through', true);
BEGIN
    -- Nested IFs: PL/pgSQL does not promise to stop at the first false operand of AND.
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_auditevent' AND coalesce(purge_through, '') <> '' THEN
        IF OLD.sequence <= purge_through::bigint THEN
            RETURN OLD;
        END IF;
    END IF;
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_pendingevent'
       AND coalesce(current_setting('audit.chaining', true), '') = 'on' THEN
        RETURN NULL;  -- a statement-level trigger: NULL lets the statement go on
    END IF;
    RAISE EXCEPTION 'the audit log is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

-- Once per statement, not per row: the sequencer deletes hundreds of rows at a time.
CREATE TRIGGER audit_pendingevent_no_change
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_pendingevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

REVOKE UPDATE, DELETE, TRUNCATE ON audit_pendingevent FROM PUBLIC;
"""

BACKWARD = """
DROP TRIGGER IF EXISTS audit_pendingevent_no_change ON audit_pendingevent;
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_checkpoints_append_only_and_purge")]

    operations = [
        migrations.CreateModel(
            name="PendingEvent",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("entry", models.TextField()),
            ],
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]

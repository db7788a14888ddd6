"""Checkpoints are append-only too; the event table admits one kind of DELETE: a retention purge.

A purge deletes the oldest events, through a sequence it names in the
transaction-local setting ``audit.purge_through``, and nothing else: no
UPDATE, no TRUNCATE, no DELETE of a later event. What a purge did stays
provable: it signs a checkpoint at the cut and appends an ``audit.purge``
event, and verification refuses a log that starts after #1 without both.

Grants: nobody but the table owner keeps UPDATE, DELETE or TRUNCATE.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger AS $$
DECLARE
    purge_through text := current_setting('audit.purge_through', true);
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_auditevent'
       AND coalesce(purge_through, '') <> '' AND OLD.sequence <= purge_through::bigint THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_checkpoint_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_checkpoint
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();

CREATE TRIGGER audit_checkpoint_no_truncate
    BEFORE TRUNCATE ON audit_checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

REVOKE UPDATE, DELETE, TRUNCATE ON audit_auditevent, audit_checkpoint FROM PUBLIC;
"""

BACKWARD = """
DROP TRIGGER IF EXISTS audit_checkpoint_no_truncate ON audit_checkpoint;
DROP TRIGGER IF EXISTS audit_checkpoint_no_update_delete ON audit_checkpoint;
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_auditexport_checkpoint_and_more")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

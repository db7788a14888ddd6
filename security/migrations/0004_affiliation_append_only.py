"""Affiliations are append-only: ``valid_from`` is the database's time, and no row is ever rewritten.

A row inserted by any role but the table's owner starts at the database's
time of the insert, whatever ``valid_from`` it names (``affiliation_from_now``):
the service's role cannot backdate one. (The owner, who could drop the trigger
anyway, may name a time: tests and data repairs set up history that way.)
An UPDATE raises (the audit log's ``audit_refuse_change``, a trigger that binds
every role), and so does a TRUNCATE. The trigger also makes :mod:`tenants.roles`
revoke UPDATE, DELETE and TRUNCATE from the service's role on this table after
the public schema is migrated, so the service may only SELECT and INSERT. A
DELETE by the tables' owner stays possible: purging an offboarded community
deletes its rows (``ON DELETE CASCADE``).
"""

import django.db.models.functions.datetime
from django.db import migrations, models

FORWARD = """
CREATE OR REPLACE FUNCTION affiliation_from_now() RETURNS trigger AS $$
BEGIN
    IF NOT pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'USAGE') THEN
        NEW.valid_from := statement_timestamp();
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER security_affiliation_from_now BEFORE INSERT ON security_affiliation
    FOR EACH ROW EXECUTE FUNCTION affiliation_from_now();
CREATE TRIGGER security_affiliation_append_only BEFORE UPDATE ON security_affiliation
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER security_affiliation_no_truncate BEFORE TRUNCATE ON security_affiliation
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS security_affiliation_no_truncate ON security_affiliation;
DROP TRIGGER IF EXISTS security_affiliation_append_only ON security_affiliation;
DROP TRIGGER IF EXISTS security_affiliation_from_now ON security_affiliation;
DROP FUNCTION IF EXISTS affiliation_from_now();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("security", "0003_user_recipient_fields_and_affiliation"),
        ("audit", "0002_append_only"),
    ]

    operations = [
        migrations.AlterField(
            model_name="affiliation",
            name="valid_from",
            field=models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]

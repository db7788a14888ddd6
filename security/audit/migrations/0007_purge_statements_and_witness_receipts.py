"""Signed purge statements and witness receipts, append-only like the log and its checkpoints.

The tables refuse UPDATE, DELETE and TRUNCATE with the same kind of trigger as
``audit_checkpoint``, through a function of their own
(``audit_refuse_statement_change``): the event table's function is being
reworked for purges, and these tables admit no purge at all.
"""

from django.db import migrations, models

FORWARD = """
CREATE OR REPLACE FUNCTION audit_refuse_statement_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_purgestatement_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_purgestatement
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_statement_change();

CREATE TRIGGER audit_purgestatement_no_truncate
    BEFORE TRUNCATE ON audit_purgestatement
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_statement_change();

CREATE TRIGGER audit_witnessreceipt_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_witnessreceipt
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_statement_change();

CREATE TRIGGER audit_witnessreceipt_no_truncate
    BEFORE TRUNCATE ON audit_witnessreceipt
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_statement_change();

REVOKE UPDATE, DELETE, TRUNCATE ON audit_purgestatement, audit_witnessreceipt FROM PUBLIC;
"""

BACKWARD = """
DROP TRIGGER IF EXISTS audit_witnessreceipt_no_truncate ON audit_witnessreceipt;
DROP TRIGGER IF EXISTS audit_witnessreceipt_no_update_delete ON audit_witnessreceipt;
DROP TRIGGER IF EXISTS audit_purgestatement_no_truncate ON audit_purgestatement;
DROP TRIGGER IF EXISTS audit_purgestatement_no_update_delete ON audit_purgestatement;
DROP FUNCTION IF EXISTS audit_refuse_statement_change();
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0006_database_guards_without_session_settings")]

    operations = [
        migrations.CreateModel(
            name="PurgeStatement",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("first", models.BigIntegerField()),
                ("through", models.BigIntegerField(unique=True)),
                ("entry_hash", models.CharField(max_length=64)),
                ("before", models.DateTimeField()),
                ("retention_days", models.PositiveIntegerField()),
                ("signed_at", models.DateTimeField()),
                ("key_id", models.CharField(max_length=64)),
                ("statement", models.TextField()),
                ("signature", models.CharField(max_length=128)),
            ],
            options={
                "ordering": ["through"],
            },
        ),
        migrations.CreateModel(
            name="WitnessReceipt",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "kind",
                    models.CharField(
                        choices=[("checkpoint", "Checkpoint"), ("purge", "Purge statement")], max_length=16
                    ),
                ),
                ("sequence", models.BigIntegerField()),
                ("witnessed_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("kind", "sequence"), name="audit_witness_receipt_once")
                ],
            },
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]

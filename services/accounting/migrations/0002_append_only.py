"""The copies provided, the suspensions and the recorded disclosures are append-only: UPDATE and DELETE raise.

164.528(d) asks that they be kept six years; the application never changes
them, and the database refuses to (the audit log's ``audit_refuse_change``).
"""

from django.db import migrations

TABLES = ("accounting_providedaccounting", "accounting_suspension", "accounting_recordeddisclosure")

FORWARD = "\n".join(
    f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
    f"FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();\n"
    f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
    f"FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();"
    for table in TABLES
)
BACKWARD = "\n".join(
    f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};\nDROP TRIGGER IF EXISTS {table}_append_only ON {table};"
    for table in TABLES
)


class Migration(migrations.Migration):
    dependencies = [("accounting", "0001_initial"), ("audit", "0007_purge_statements_and_witness_receipts")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

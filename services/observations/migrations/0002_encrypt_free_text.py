"""Seal an observation's free text (``display`` and a text value) like the participant's PHI fields.

Each existing row is sealed with the community's newest data key, bound to
this model, field and row, as a save would; then the plaintext columns are
dropped and the table is rewritten (``CLUSTER``), so that no heap page of
the table still holds the dropped text. Copies made before (backups, WAL
archives, replicas' old pages) are not reached: see docs/hipaa-mapping.md.

An encrypted column cannot be added with ``AddField`` (its default would be
prepared as plaintext, which the field refuses), so each is added as a plain
NULL text column and then altered to the encrypted field: the same column
type, no SQL.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations, models

import vault.fields

BATCH = 500
TABLE = "observations_observation"


def _keyless_community_is_offboarded(schema_editor: Any) -> bool:
    """Whether this schema's community was offboarded (its keys destroyed: nothing can be sealed, nor read)."""
    schema = schema_editor.connection.schema_name
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT status FROM public.tenants_community WHERE schema_name = %s", [schema])
        found = cursor.fetchone()
    return found is not None and found[0] == "offboarded"


def seal_free_text(apps: Any, schema_editor: Any) -> None:
    """Copy each row's plaintext into the encrypted fields (sealed on save)."""
    observation = apps.get_model("observations", "Observation")
    data_key = apps.get_model("vault", "DataKey")
    rows = observation.objects.order_by("pk")
    if not rows.exists():
        return
    if not data_key.objects.filter(kind="data").exists():
        if _keyless_community_is_offboarded(schema_editor):
            return  # crypto-shredded: its text goes with the dropped column instead of being sealed
        raise RuntimeError(
            f"community {schema_editor.connection.schema_name} holds observations but no data key: "
            "give it its keys before migrating"
        )
    for row in rows.iterator(chunk_size=BATCH):
        row.display = row.display_plaintext
        row.value_text = row.value_text_plaintext or None
        row.save(update_fields=["display", "value_text"])


def open_free_text(apps: Any, schema_editor: Any) -> None:
    """Back to plaintext columns (the reverse migration): open each sealed value."""
    observation = apps.get_model("observations", "Observation")
    if not observation.objects.exists() or not apps.get_model("vault", "DataKey").objects.exists():
        return
    for row in observation.objects.order_by("pk").iterator(chunk_size=BATCH):
        row.display_plaintext = row.display or ""
        row.value_text_plaintext = row.value_text or ""
        row.save(update_fields=["display_plaintext", "value_text_plaintext"])


class Migration(migrations.Migration):
    dependencies = [
        ("observations", "0001_initial"),
        ("vault", "0001_initial"),
    ]

    operations = [
        migrations.RenameField("observation", "display", "display_plaintext"),
        migrations.RenameField("observation", "value_text", "value_text_plaintext"),
        migrations.AddField("observation", "display", models.TextField(null=True)),
        migrations.AddField("observation", "value_text", models.TextField(null=True)),
        migrations.AlterField("observation", "display", vault.fields.EncryptedTextField(default="", null=True)),
        migrations.AlterField("observation", "value_text", vault.fields.EncryptedTextField(null=True)),
        migrations.RunPython(seal_free_text, open_free_text),
        migrations.RemoveField("observation", "display_plaintext"),
        migrations.RemoveField("observation", "value_text_plaintext"),
        # Rewrite the table: the dropped columns' text stays in its pages until a rewrite (PostgreSQL's
        # DROP COLUMN only hides it). CLUSTER with a table name runs inside the migration's transaction.
        migrations.RunSQL(
            f"CLUSTER {TABLE} USING {TABLE}_pkey; ALTER TABLE {TABLE} SET WITHOUT CLUSTER;",
            migrations.RunSQL.noop,
        ),
    ]

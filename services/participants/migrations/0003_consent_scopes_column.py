"""The participant's active consent scopes as a column (kept by the consents app's triggers).

A list narrowed by consent (the policy's ``consent_scope`` condition) and a
read that shows the scopes become one plain query. The consents app owns what
keeps the column in step (``consents`` migration 0002), so participants never
depend on consents.
"""

import django.contrib.postgres.fields
from django.db import migrations, models

class Migration(migrations.Migration):
    dependencies = [
        ("participants", "0002_cursor_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="participant",
            name="consent_scopes",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.CharField(max_length=32), default=list, editable=False, size=None
            ),
        ),
    ]

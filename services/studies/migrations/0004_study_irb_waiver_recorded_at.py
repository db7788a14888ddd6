"""When a study's waiver of authorization was put on record: the accounting names it for no access before.

A waiver already on a study is taken as recorded now (fail closed: reads before
this migration are no longer labelled as under it).
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('studies', '0003_study_waiver_and_research_contacts'),
    ]

    operations = [
        migrations.AddField(
            model_name='study',
            name='irb_waiver_recorded_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunSQL(
            "UPDATE studies_study SET irb_waiver_recorded_at = statement_timestamp() WHERE irb_waiver_number <> ''",
            migrations.RunSQL.noop,
        ),
    ]

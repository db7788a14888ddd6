"""A HIPAA authorization counts once a compliance officer confirms it; one recorded before stays unconfirmed."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('consents', '0003_consent_hipaa_authorization'),
    ]

    operations = [
        migrations.AddField(
            model_name='consent',
            name='authorization_confirmed_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='consent',
            name='authorization_confirmed_by',
            field=models.CharField(blank=True, db_default='', max_length=64),
        ),
    ]

"""Django app configuration for the accounting of disclosures."""

from django.apps import AppConfig


class AccountingConfig(AppConfig):
    """Accounting: a tenant app, migrated into every community's schema."""

    name = "services.accounting"
    label = "accounting"
    default_auto_field = "django.db.models.BigAutoField"

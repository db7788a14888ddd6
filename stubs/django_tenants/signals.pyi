"""The django-tenants signals the project connects to (django_tenants/signals.py)."""

from django.dispatch import Signal

post_schema_sync: Signal
schema_needs_to_be_sync: Signal
schema_migrated: Signal
schema_migrate_message: Signal
schema_pre_migration: Signal

"""The service's PostgreSQL backend (``ENGINE = "tenants.backend"``): django-tenants', schema set per transaction."""

"""Tenant-scoped research APIs, one Django app per domain; their tables live in each community's schema."""

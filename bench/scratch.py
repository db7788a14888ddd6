"""The benchmarks' scratch communities: dropped with their schema and key, and what an interrupted run left.

Import after ``django.setup()``, as the benchmarks import the project's models.
"""

from __future__ import annotations

from django.db import connection

from tenants.models import Community
from vault.providers import get_provider


def drop_scratch_community(slug: str) -> None:
    """Remove the community ``slug`` (a benchmark's constant, never input), its schema and its key."""
    if Community.objects.filter(slug=slug).exists():
        get_provider().destroy_community_key(slug)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {connection.ops.quote_name(slug)} CASCADE")
    Community.objects.filter(slug=slug).delete()

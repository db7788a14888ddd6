"""Which community a Host header names, kept in Redis so that a request need not ask the database.

Every request on a community's host needs its community (id, schema, status)
before anything else. The answers live in a :class:`~core.generations.GenerationCache`:
any change to a community or a domain moves its generation on, so a
suspension is seen by the next request in every process. A host nobody
serves is not cached.
"""

from __future__ import annotations

from typing import Any

from core.generations import GenerationCache, instance_from
from tenants.models import Community

HOSTS = GenerationCache("communities")
_SCOPE = "hosts"
_CACHED_FIELDS = ("id", "schema_name", "slug", "name", "status")


def community_for_host(host: str) -> Community | None:
    """The community ``host`` belongs to, or ``None`` (from the cache when it can answer)."""
    host = host.lower()
    lookup = HOSTS.get(_SCOPE, host)
    if lookup.hit:
        return instance_from(Community, {name: lookup.value[name] for name in _CACHED_FIELDS})
    community = Community.objects.filter(domains__domain=host).only(*_CACHED_FIELDS).first()
    if community is not None:
        HOSTS.put(_SCOPE, lookup, host, {name: getattr(community, name) for name in _CACHED_FIELDS})
    return community


def forget_hosts(**_: Any) -> None:
    """Signal receiver: a community or a domain changed, so every host is looked up again."""
    HOSTS.forget(_SCOPE)

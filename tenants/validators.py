"""Validation of community slugs (which become PostgreSQL schema names) and domains.

django-tenants formats the schema name straight into SQL text and its own
check (``^(?!pg_).{1,63}$``) lets quotes through, so a slug is checked here
before it reaches django-tenants, and again by a CHECK constraint in the
database (see :mod:`tenants.models`), which uses the same pattern and list.
"""

from __future__ import annotations

import re

from django.conf import settings

from core.errors import BadRequest
from core.schema import SLUG_PATTERN
from tenants.errors import CommunityErrorCode

_SLUG_RE = re.compile(SLUG_PATTERN)

# Names PostgreSQL or the platform use for themselves. ``pg_*`` is refused by prefix.
RESERVED_SLUGS = frozenset(
    {
        "public",
        "information_schema",
        "pg_catalog",
        "pg_toast",
        "admin",
        "api",
        "platform",
        "static",
        "www",
        "root",
        "postgres",
    }
)

_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
MAX_DOMAIN_LENGTH = 253
MAX_NAME_LENGTH = 200


def validate_slug(slug: str) -> str:
    """Return ``slug`` if it may become a schema name, else raise :class:`BadRequest`."""
    if not _SLUG_RE.fullmatch(slug):
        raise BadRequest(
            "slug must be 3 to 40 characters: a lowercase ASCII letter, then lowercase letters, digits or '_'",
            code=CommunityErrorCode.INVALID_SLUG,
        )
    if slug.startswith("pg_") or slug in RESERVED_SLUGS:
        raise BadRequest(f"slug '{slug}' is reserved", code=CommunityErrorCode.INVALID_SLUG)
    return slug


def validate_domain(domain: str) -> str:
    """Return the normalised (lowercase) host name, or raise :class:`BadRequest`."""
    normalised = domain.strip().lower().rstrip(".")
    labels = normalised.split(".")
    if (
        not normalised
        or len(normalised) > MAX_DOMAIN_LENGTH
        or len(labels) < 2  # noqa: PLR2004 - a community host is always a sub-domain
        or not all(_LABEL_RE.fullmatch(label) for label in labels)
    ):
        raise BadRequest(
            "domain must be a host name such as alpha.localhost (letters, digits, '-' and '.')",
            code=CommunityErrorCode.INVALID_DOMAIN,
        )
    if normalised in settings.PUBLIC_HOSTS:
        raise BadRequest(f"domain '{normalised}' is a platform host", code=CommunityErrorCode.INVALID_DOMAIN)
    return normalised


def validate_name(name: str) -> str:
    """Return the trimmed display name, or raise :class:`BadRequest`."""
    trimmed = name.strip()
    if not trimmed or len(trimmed) > MAX_NAME_LENGTH or not trimmed.isprintable():
        raise BadRequest(
            f"name must be 1 to {MAX_NAME_LENGTH} printable characters", code=CommunityErrorCode.INVALID_NAME
        )
    return trimmed

"""Error codes of the communities app."""

from __future__ import annotations

from enum import StrEnum


class CommunityErrorCode(StrEnum):
    """Why a community operation or request was refused."""

    INVALID_SLUG = "invalid_slug"
    INVALID_DOMAIN = "invalid_domain"
    INVALID_NAME = "invalid_name"
    SLUG_TAKEN = "slug_taken"
    DOMAIN_TAKEN = "domain_taken"
    NOT_FOUND = "community_not_found"
    UNKNOWN_HOST = "unknown_community"
    INVALID_HOST = "invalid_host"
    NO_COMMUNITY = "community_required"
    SUSPENDED = "community_suspended"
    INVALID_TRANSITION = "invalid_status_transition"
    NOT_CONFIRMED = "offboarding_not_confirmed"
    ARCHIVE_FAILED = "audit_archive_failed"

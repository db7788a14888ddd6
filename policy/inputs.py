"""The input document every engine sees, built the same way for HTTP requests and tasks.

Shape (``policy/rego/gateway/authz.rego`` reads exactly this)::

    {
      "subject":   {"id", "community", "roles": [...], "amr": [...], "mfa_age_seconds": int | null},
      "community": {"slug", "status"},
      "action":    "participant.read",
      "resource":  {"type", "id": str | null, "attributes": {"consent_scopes": [...], ...}},
      "purpose":   "research_use",
      "context":   {"now": epoch seconds, "request_id", "client_ip",
                    "break_glass": {"active", "subject", "expires_at"} | null}
    }

Nothing in it is PHI: ids are opaque, attributes are scopes and statuses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

SECOND_FACTOR_METHODS = frozenset({"otp", "mfa"})


@runtime_checkable
class SubjectClaims(Protocol):
    """What policy needs from a verified token (security's AccessClaims has these)."""

    subject: str
    community: str
    roles: tuple[str, ...]
    amr: tuple[str, ...]
    auth_time: int


def subject_document(
    *, subject_id: str, community: str, roles: Sequence[str], amr: Sequence[str], auth_time: int, now: int
) -> dict[str, Any]:
    """The subject: who, in which community, with which roles, and how long ago a second factor was used."""
    used_second_factor = bool(SECOND_FACTOR_METHODS & set(amr))
    return {
        "id": subject_id,
        "community": community,
        "roles": sorted(roles),
        "amr": list(amr),
        "mfa_age_seconds": max(0, now - auth_time) if used_second_factor else None,
    }


def policy_input(
    *,
    subject: Mapping[str, Any],
    community_slug: str,
    community_status: str,
    action: str,
    resource_type: str,
    resource_id: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    purpose: str,
    now: int,
    request_id: str | None = None,
    client_ip: str | None = None,
    break_glass: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the input document."""
    return {
        "subject": dict(subject),
        "community": {"slug": community_slug, "status": community_status},
        "action": action,
        "resource": {"type": resource_type, "id": resource_id, "attributes": dict(attributes or {})},
        "purpose": purpose,
        "context": {
            "now": now,
            "request_id": request_id,
            "client_ip": client_ip,
            "break_glass": dict(break_glass) if break_glass else None,
        },
    }

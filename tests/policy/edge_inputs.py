"""Inputs the corpus does not hold: the edges of the policy, and documents the service never sends.

The corpus (``policy/corpus/sample.jsonl``) is every role by every action, well formed. These are the
rest, after the list of the Rego portability review (§3): communities that are not active,
membership edges, missing or garbled members, consent edges, second-factor ages, break-glass
variants, and every member of the document malformed in the ways JSON allows (a string, a
number, null, an object where a list belongs). Each engine must decide each of them, and all
must decide it alike.
"""

from __future__ import annotations

import copy
from typing import Any

NOW = 1800000000
GRANT = {
    "active": True,
    "subject": "u-1",
    "community": "alpha",
    "expires_at": NOW + 600,
    "scope": "participant",
    "scope_id": "p-1",
}
BASE: dict[str, Any] = {
    "subject": {"id": "u-1", "community": "alpha", "roles": ["coordinator"], "amr": ["pwd"], "mfa_age_seconds": None},
    "community": {"slug": "alpha", "status": "active"},
    "action": "participant.read",
    "resource": {"type": "participant", "id": "p-1", "attributes": {"consent_scopes": ["research_use"]}},
    "purpose": "research_use",
    "context": {"now": NOW, "request_id": "r-1", "client_ip": "192.0.2.1", "break_glass": None},
}
MISSING = object()


def changed(document: dict[str, Any], *changes: tuple[str, Any]) -> dict[str, Any]:
    """A deep copy of ``document`` with each dotted path set (or removed, for ``MISSING``)."""
    result = copy.deepcopy(document)
    for path, value in changes:
        *parents, last = path.split(".")
        node = result
        for key in parents:
            node = node[key]
        if value is MISSING:
            node.pop(last, None)
        else:
            node[last] = copy.deepcopy(value)
    return result


def emergency(*changes: tuple[str, Any]) -> dict[str, Any]:
    """The base read under an emergency grant (purpose emergency), then ``changes``."""
    return changed(BASE, ("purpose", "emergency"), ("context.break_glass", GRANT), *changes)


def _community_and_membership() -> dict[str, dict[str, Any]]:
    return {
        "base": BASE,
        "suspended": changed(BASE, ("community.status", "suspended")),
        "offboarded": changed(BASE, ("community.status", "offboarded")),
        "no_roles": changed(BASE, ("subject.roles", [])),
        "another_community": changed(BASE, ("subject.community", "beta")),
        "multiple_roles": changed(BASE, ("subject.roles", ["researcher", "principal_investigator"])),
        "redacted_and_unrelated_roles": changed(BASE, ("subject.roles", ["researcher", "auditor"])),
        "unknown_action": changed(BASE, ("action", "participant.delete_everything")),
        "missing_subject": changed(BASE, ("subject", MISSING)),
        "missing_community": changed(BASE, ("community", MISSING)),
        "missing_context": changed(BASE, ("context", MISSING)),
        "garbage": {"hello": "world"},
        "empty": {},
    }


def _consent_and_purpose() -> dict[str, dict[str, Any]]:
    return {
        "purpose_not_covered": changed(BASE, ("purpose", "genomic")),
        "consent_empty": changed(BASE, ("resource.attributes.consent_scopes", [])),
        "consent_missing": changed(BASE, ("resource.attributes", {})),
        "list_read": changed(
            BASE, ("action", "participant.list"), ("resource", {"type": "participant", "id": None, "attributes": {}})
        ),
        "unknown_resource_type": changed(
            BASE, ("subject.roles", ["researcher"]), ("resource", {"type": "mystery", "id": "m-1", "attributes": {}})
        ),
        "exempt_purpose": changed(BASE, ("purpose", "operations")),
        "exempt_purpose_without_phi": changed(
            BASE, ("action", "study.read"), ("purpose", "operations"), ("resource", {"type": "study", "id": "s-1"})
        ),
    }


def _second_factor() -> dict[str, dict[str, Any]]:
    rotate = changed(BASE, ("subject.roles", ["owner"]), ("action", "key.rotate"), ("resource.type", "key"))
    return {
        f"mfa_{name}": changed(rotate, ("subject.mfa_age_seconds", age), ("subject.amr", ["pwd", "otp"]))
        for name, age in {
            "fresh": 60,
            "stale": 901,
            "at_the_limit": 900,
            "a_fraction_past_the_limit": 900.0000001,  # regopy's native input read it as 900
            "a_fraction_within_the_limit": 899.5,
            "a_tiny_negative": -1e-300,  # and this as -0
            "negative": -5,
            "textual": "60",
            "boolean": True,
            "null": None,
            "object": {"seconds": 60},
        }.items()
    }


def _break_glass() -> dict[str, dict[str, Any]]:
    return {
        "break_glass": emergency(),
        "break_glass_expired": emergency(("context.break_glass.expires_at", NOW - 1)),
        "break_glass_textual_expiry": emergency(("context.break_glass.expires_at", "never")),
        "break_glass_no_clock": emergency(("context.now", None)),
        "break_glass_textual_clock": emergency(("context.now", "now")),
        "break_glass_another_subject": emergency(("context.break_glass.subject", "u-2")),
        "break_glass_inactive": emergency(("context.break_glass.active", False)),
        "break_glass_active_as_text": emergency(("context.break_glass.active", "true")),
        "break_glass_another_community": emergency(("context.break_glass.community", "beta")),
        "break_glass_unknown_scope": emergency(("context.break_glass.scope", "community")),
        "break_glass_role_without_it": emergency(("subject.roles", ["researcher"])),
        "break_glass_auditor": emergency(("subject.roles", ["auditor"])),
        "break_glass_write": emergency(("action", "participant.update")),
        "break_glass_another_participant": emergency(("resource.id", "p-2")),
        "break_glass_observation_of_the_participant": emergency(
            ("action", "observation.read"),
            ("resource", {"type": "observation", "id": "o-1", "attributes": {"participant": "p-1"}}),
        ),
        "break_glass_observation_of_another": emergency(
            ("action", "observation.read"),
            ("resource", {"type": "observation", "id": "o-2", "attributes": {"participant": "p-2"}}),
        ),
        "break_glass_study_list": emergency(
            ("action", "participant.list"),
            ("resource", {"type": "participant", "id": None, "attributes": {"study": "s-1"}}),
            ("context.break_glass.scope", "study"),
            ("context.break_glass.scope_id", "s-1"),
        ),
        "break_glass_suspended": emergency(("community.status", "suspended")),
        "break_glass_exempt_purpose": emergency(("purpose", "operations")),
        "break_glass_grant_as_text": emergency(("context.break_glass", "active")),
        "break_glass_grant_as_list": emergency(("context.break_glass", [GRANT])),
    }


def _malformed() -> dict[str, dict[str, Any]]:
    """Every member the policy reads, with a value of the wrong kind."""
    values = {
        "string": "coordinator",
        "null": None,
        "number": 7,
        "object": {"coordinator": True},
        "object_of_roles": {"x": "principal_investigator"},  # iterated, its values would be roles
    }
    cases = {
        "malformed_no_type": changed(BASE, ("resource.type", MISSING)),
        "malformed_type_number": changed(BASE, ("resource.type", 12)),
        "malformed_purpose_number": changed(BASE, ("purpose", 7)),
        "malformed_purpose_list": changed(BASE, ("purpose", ["research_use"])),
        "malformed_id_number": changed(BASE, ("resource.id", 12)),
        "malformed_action_list": changed(BASE, ("action", ["participant.read"])),
        "malformed_action_missing": changed(BASE, ("action", MISSING)),
        "malformed_roles_of_numbers": changed(BASE, ("subject.roles", [1, 2])),
        "malformed_roles_with_null": changed(BASE, ("subject.roles", ["coordinator", None])),
        "malformed_roles_missing": changed(BASE, ("subject.roles", MISSING)),
        "malformed_consent_string": changed(BASE, ("resource.attributes.consent_scopes", "research_use")),
        "malformed_consent_null": changed(BASE, ("resource.attributes.consent_scopes", None)),
        "malformed_consent_object": changed(BASE, ("resource.attributes.consent_scopes", {"research_use": True})),
        "malformed_consent_object_of_purposes": changed(
            BASE, ("resource.attributes.consent_scopes", {"x": "research_use"})
        ),
        "malformed_attributes_string": changed(BASE, ("resource.attributes", "research_use")),
        "malformed_resource_string": changed(BASE, ("resource", "participant")),
        "malformed_subject_string": changed(BASE, ("subject", "u-1")),
        "malformed_community_string": changed(BASE, ("community", "alpha")),
        "malformed_context_string": changed(BASE, ("context", "now")),
        "malformed_holder_number": changed(
            BASE,
            ("action", "break_glass.revoke"),
            ("resource", {"type": "break_glass", "id": "g-1", "attributes": {"holder": 1}}),
        ),
    }
    cases.update({f"malformed_roles_{name}": changed(BASE, ("subject.roles", value)) for name, value in values.items()})
    return cases


def edge_inputs() -> dict[str, dict[str, Any]]:
    """Every edge input by name."""
    return {
        **_community_and_membership(),
        **_consent_and_purpose(),
        **_second_factor(),
        **_break_glass(),
        **_malformed(),
    }

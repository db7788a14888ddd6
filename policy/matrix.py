"""The policy data the service itself reads: the one list of PHI-revealing actions, PHI fields, exempt purposes.

The Rego policy decides with ``data.gateway.matrix`` (``policy/rego/data.json``);
a few checks outside the engine must agree with it exactly, so they read the
same document instead of keeping lists of their own: the accounting of
disclosures counts the actions of ``phi_actions`` (and describes each as the
data says), honours an exempt purpose only where ``exempt_purposes`` names
it, states each purpose in the sentence of ``purpose_statements`` and tells a
redacted view (``roles``, ``redacted_roles``, ``phi_fields``) from a full one.
The file is the one ``POLICY_DIR`` holds: the directory the embedded engine
loads and the OPA bundle is built from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings

from policy.source import DATA_FILE


@dataclass(frozen=True)
class PolicyMatrix:
    """What the service reads of the policy data.

    Attributes:
        phi_actions: Each action whose response reveals PHI, with the description the accounting gives it.
        phi_fields: Per resource type, the fields a redacted view or a write's echo withholds.
        exempt_purposes: The purposes exempt from the accounting.
        purpose_statements: Per purpose of use, the sentence the accounting states it in (164.528(b)(2)(iv)).
        roles: Per role, the actions it grants.
        redacted_roles: The roles whose view of PHI is redacted.
        elevated_actions: The actions that need a second factor used within ``mfa_max_age_seconds``.
        consent_bound_resources: The resource types whose PHI a consent must cover.
        never_by_holder: The actions an emergency grant's holder may not take on it (reviewing it).
        holder_or: The actions only the grant's holder, or a holder of the roles named, may take on it.
        mfa_max_age_seconds: How recent an elevated action's second factor must be.
    """

    phi_actions: Mapping[str, str]
    phi_fields: Mapping[str, tuple[str, ...]]
    exempt_purposes: frozenset[str]
    purpose_statements: Mapping[str, str]
    roles: Mapping[str, frozenset[str]]
    redacted_roles: frozenset[str]
    elevated_actions: frozenset[str] = frozenset()
    consent_bound_resources: frozenset[str] = frozenset()
    never_by_holder: frozenset[str] = frozenset()
    holder_or: frozenset[str] = frozenset()
    mfa_max_age_seconds: int = 0

    def redacted_view(self, *, action: str, roles: Iterable[str]) -> bool:
        """Whether holders of ``roles`` saw ``action``'s PHI redacted: no role of theirs grants it unredacted."""
        return not any(action in self.roles.get(role, ()) and role not in self.redacted_roles for role in roles)

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> PolicyMatrix:
        """The matrix of a data document (``{"gateway": {"matrix": ...}}``)."""
        matrix = document["gateway"]["matrix"]
        return cls(
            phi_actions={str(action): str(text) for action, text in matrix["phi_actions"].items()},
            phi_fields={str(kind): tuple(map(str, fields)) for kind, fields in matrix["phi_fields"].items()},
            exempt_purposes=frozenset(map(str, matrix["exempt_purposes"])),
            purpose_statements={str(purpose): str(text) for purpose, text in matrix["purpose_statements"].items()},
            roles={str(role): frozenset(map(str, actions)) for role, actions in matrix["roles"].items()},
            redacted_roles=frozenset(map(str, matrix["redacted_roles"])),
            elevated_actions=frozenset(map(str, matrix["elevated_actions"])),
            consent_bound_resources=frozenset(map(str, matrix["consent_bound_resources"])),
            never_by_holder=frozenset(map(str, matrix["grant_holder_rules"]["never_by_holder"])),
            holder_or=frozenset(map(str, matrix["grant_holder_rules"]["holder_or"])),
            mfa_max_age_seconds=int(matrix["mfa_max_age_seconds"]),
        )


@cache
def _matrix_at(directory: str) -> PolicyMatrix:
    return PolicyMatrix.from_document(orjson.loads((Path(directory) / DATA_FILE).read_bytes()))


def policy_matrix() -> PolicyMatrix:
    """The matrix of the policy in ``POLICY_DIR`` (read once per directory)."""
    return _matrix_at(str(settings.POLICY_DIR))

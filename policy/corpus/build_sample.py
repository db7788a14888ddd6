"""Rebuild ``policy/corpus/sample.jsonl``: every role of the policy data by every action any role holds, three ways.

Each (role, action) gets three synthetic inputs: password only with a covering
consent, a fresh second factor with a covering consent, and password only with
no consent. The actions are read from ``policy/rego/data.json`` (the roles'
lists), so the corpus cannot drift from the policy: a test fails when an
action is missing from it. Run it after adding or removing an action::

    python -m policy.corpus.build_sample
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent / "sample.jsonl"
DATA = Path(__file__).resolve().parent.parent / "rego" / "data.json"
COLLECTIONS = (".list",)
VARIANTS: tuple[tuple[list[str], int | None, list[str]], ...] = (  # (amr, second factor's age, consent scopes)
    (["pwd"], None, ["research_use"]),
    (["pwd", "otp", "mfa"], 120, ["research_use"]),
    (["pwd"], None, []),
)


def actions_and_roles(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Every action some role holds, and every role, both sorted."""
    roles: dict[str, list[str]] = data["gateway"]["matrix"]["roles"]
    return sorted({action for held in roles.values() for action in held}), sorted(roles)


def _input(role: str, action: str, variant: tuple[list[str], int | None, list[str]], number: int) -> dict[str, Any]:
    amr, mfa_age, scopes = variant
    kind = action.split(".", 1)[0]
    return {
        "action": action,
        "community": {"slug": "alpha", "status": "active"},
        "context": {
            "break_glass": None,
            "client_ip": "192.0.2.10",
            "now": 1800000000,
            "request_id": f"sample-{number}",
        },
        "purpose": "research_use",
        "resource": {
            "attributes": {"consent_scopes": scopes},
            "id": None if action.endswith(COLLECTIONS) else f"{kind}-1",
            "type": kind,
        },
        "subject": {"amr": amr, "community": "alpha", "id": f"u-{role}", "mfa_age_seconds": mfa_age, "roles": [role]},
    }


def sample(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The corpus for a policy data document."""
    actions, roles = actions_and_roles(data)
    inputs = [(action, role, variant) for action in actions for role in roles for variant in VARIANTS]
    return [_input(role, action, variant, number) for number, (action, role, variant) in enumerate(inputs, 1)]


def main() -> None:
    """Write the corpus next to this file."""
    rows = sample(json.loads(DATA.read_text(encoding="utf-8")))
    CORPUS.write_text("".join(json.dumps(row, sort_keys=True, separators=(",", ":")) + "\n" for row in rows))
    print(f"{CORPUS}: {len(rows)} inputs")


if __name__ == "__main__":
    main()

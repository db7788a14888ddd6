"""Every FHIR resource the project writes is valid FHIR R4 (4.0.1): the audit export's AuditEvents and its Bundle.

The audit export (``format=fhir``) is the only FHIR the project writes: the research exports are CSV and JSON
Lines, the accounting of disclosures CSV and JSON. The export under test holds every kind of event the log can
hold: one of every action :func:`~tests.support.actions.recorded_actions` finds in the code (no list kept here),
some made by the code paths that make them in service (requests through the middleware, a failed sign-in, a
break-glass read, a refusal, lifecycle steps, membership changes), the rest staged as those paths stage them,
in the shapes events take: no roles, no participant, no reasons, an empty reason, a denial, an anonymous actor,
unicode, a no-break space and a lone surrogate in a user agent. Both communities and the platform's log are
exported, and each export still verifies offline. Validation is :func:`~tests.support.fhir.fhir_problems`.
"""

from __future__ import annotations

import fnmatch
import io
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import fhirkit
import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tenants.utils import schema_context

from security.actions import membership_add, membership_remove, membership_role_change, user_deactivate
from security.audit.exports import export_to_path
from security.audit.formats import FormatError, fhir_read, fhir_resource
from security.audit.offline import verify_files
from security.audit.sequencer import audit_chain
from security.audit.staging import audit_append
from security.models import User
from services.participants.models import Participant
from tenants.lifecycle import community_resume, community_suspend
from tenants.models import Community
from tests.factories import ParticipantFactory, UserFactory
from tests.support.actions import recorded_actions
from tests.support.breakglass import EMERGENCY, grant_in
from tests.support.clients import ALPHA_HOST, BETA_HOST, MemberClient
from tests.support.fhir import fhir_problems

LOGS = ("alpha", "beta", "public")
DATA = Path(__file__).parent / "data"
# The shapes an event takes, each staged as some path stages it; every action is staged in one of them.
SHAPES: tuple[dict[str, Any], ...] = (
    {"actor_id": "operator:test", "resource_type": "community", "resource_id": "alpha"},  # no roles, no reasons
    {"actor_roles": ["researcher"], "outcome": "deny", "reasons": ["action_not_permitted"], "http_status": 403},
    {"actor_id": "", "reasons": [""], "client_ip": "198.51.100.7", "http_status": 401},  # anonymous, about nothing
    {
        "actor_roles": ["coordinator"],
        "resource_type": "participant",
        "resource_id": "",  # a list: no one record
        "participant_pseudonyms": ["P-0000000001", "P-0000000002"],
        "purpose": "emergency",
        "break_glass": True,
        "reasons": ["role_grants_action", "break_glass:00000000-0000-4000-8000-000000000000"],
    },
    {
        "actor_id": "ü-7",
        "actor_roles": ["principal_investigator", "coordinator"],
        "resource_type": "study",
        "resource_id": "ß-✓",
        "reasons": ["naïve ✓", ""],
        "user_agent": "Mozilla/5.0\u00a0(✓ \u2028 \U0001f9ea) x\ud800y",  # a lone surrogate: staged as U+FFFD
    },
)


def _requests(member_client: MemberClient, participant: Participant, beta_participant: Participant) -> None:
    """Requests through the middleware: allowed, denied, a break-glass read, a read in beta, odd user agents."""
    auditor, _ = member_client("auditor")
    assert auditor.get("/api/v1/audit/events/", HTTP_USER_AGENT="Mozilla/5.0\u00a0✓").status_code == 200
    researcher, _ = member_client("researcher")
    assert researcher.get("/api/v1/audit/events/").status_code == 403
    holder, user = member_client("coordinator")
    grant_in("alpha", user, str(participant.pk))
    read = holder.get(f"/api/v1/participants/{participant.pk}/", HTTP_X_PURPOSE_OF_USE=EMERGENCY)
    assert read.status_code == 200, read.content
    coordinator, _ = member_client("coordinator", on_beta=True)
    coordinator.get(f"/api/v1/participants/{beta_participant.pk}/")  # allowed or refused, it is an event either way


def _changes(client_for: Callable[[str], Any], user: User) -> None:
    """Actions on their own paths: lifecycle, a refusal, a failed sign-in, membership changes, a user flag."""
    community_suspend(slug="alpha", actor_id="operator:test")
    assert client_for(ALPHA_HOST).get("/api/v1/me", HTTP_USER_AGENT="probe/1").status_code == 403
    community_resume(slug="alpha", actor_id="operator:test")
    response = client_for(BETA_HOST).post(
        "/api/v1/auth/token", {"email": user.email, "password": "wrong password"}, format="json"
    )
    assert response.status_code in (400, 401)
    membership_add(email=user.email, community_slug="beta", role="researcher", actor_id="operator:test")
    membership_role_change(
        email=user.email, community_slug="beta", from_role="researcher", to_role="coordinator", actor_id="operator:test"
    )
    membership_remove(email=user.email, community_slug="beta", role="coordinator", actor_id="operator:test")
    user_deactivate(email=user.email, actor_id="operator:test")


def _staged(actions: frozenset[str]) -> None:
    """One event of each action, staged in a log and a shape of its turn."""
    for number, action in enumerate(sorted(actions)):
        with schema_context(LOGS[number % len(LOGS)]):
            audit_append(**{"resource_type": "", "resource_id": "", **SHAPES[number % len(SHAPES)], "action": action})


def _export(log: str, directory: Path) -> dict[str, Any]:
    """The log's whole export as FHIR (written, verified offline, parsed)."""
    path = directory / f"{log}.fhir.json"
    with schema_context(log):
        audit_chain()
        export_to_path(path, kind="fhir", since=timezone.now() - timedelta(days=1), until=timezone.now())
    keys = directory / f"{log}-keys.pem"
    call_command("audit_keys", "--community", log, "--out", str(keys), stdout=io.StringIO())
    verified = verify_files(path, Path(f"{path}.manifest.json"), keys)
    assert verified.intact, verified.problem
    bundle: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return bundle


@pytest.fixture
def exported(
    alpha: Community, beta: Community, member_client: MemberClient, client_for: Callable[[str], Any], tmp_path: Path
) -> dict[str, dict[str, Any]]:
    """The three logs' exports, holding one event of every action the code names, and every shape."""
    participant = ParticipantFactory.create(community=alpha)
    beta_participant = ParticipantFactory.create(community=beta)
    _requests(member_client, participant, beta_participant)
    _changes(client_for, UserFactory.create())
    _staged(recorded_actions().names)
    return {log: _export(log, tmp_path) for log in LOGS}


def _resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in bundle.get("entry", [])]


def test_the_validators_are_fhir_r4() -> None:
    assert fhirkit.FHIR_VERSION == "4.0.1"
    assert fhir_problems({"resourceType": "Bundle", "type": "collection"}) == []


def test_every_audit_event_and_bundle_of_the_exports_is_valid_fhir_r4(exported: dict[str, dict[str, Any]]) -> None:
    problems = []
    for log, bundle in exported.items():
        problems += [f"{log} Bundle: {problem}" for problem in fhir_problems(bundle)]
        for resource in _resources(bundle):
            problems += [f"{log} {resource['id']}: {problem}" for problem in fhir_problems(resource)]

    assert problems == []


def test_the_exports_hold_every_action_and_every_shape(exported: dict[str, dict[str, Any]]) -> None:
    resources = [resource for bundle in exported.values() for resource in _resources(bundle)]
    exported_actions = {resource["subtype"][0]["code"] for resource in resources}
    known = recorded_actions()

    assert known.names <= exported_actions
    assert all(fnmatch.filter(sorted(exported_actions), pattern) for pattern in known.patterns), known.patterns
    # An action recorded on a real path that the code scan does not know would be missing from the next export's
    # test: the scan must see every way the code names an action.
    unknown = {action for action in exported_actions - known.names if not known.matches(action)}
    assert unknown == set()
    assert {"community.suspended", "community.active", "request.refuse", "participant.read"} <= exported_actions
    assert all(_resources(exported[log]) for log in LOGS)
    assert any("outcomeDesc" not in resource for resource in resources)  # no reasons
    assert any("entity" not in resource for resource in resources)  # about nothing
    assert any("role" not in resource["agent"][0] for resource in resources)  # an actor without roles
    assert any(resource["outcome"] == "4" for resource in resources)  # a denial
    entries = [json.loads(resource["extension"][0]["extension"][0]["valueString"]) for resource in resources]
    assert any(e["break_glass"] and e["http_status"] == 200 and e["request_id"] for e in entries)  # a real one
    assert any(e["action"] == "request.refuse" and not e["actor_id"] and e["request_id"] for e in entries)
    assert any("\u00a0" in e["user_agent"] for e in entries)


def test_an_empty_outcome_description_role_list_or_entity_list_is_refused() -> None:
    """What rendering 1 wrote (``outcomeDesc: ""``, ``role: []``, ``entity: []``): the validators refuse each."""
    bundle = json.loads((DATA / "alpha-v1.fhir.json").read_text(encoding="utf-8"))
    problems = "\n".join(problem for resource in _resources(bundle) for problem in fhir_problems(resource))

    assert "AuditEvent.outcomeDesc: an empty string is not allowed" in problems
    assert "AuditEvent.agent[0].role: an empty array is not allowed" in problems
    assert "AuditEvent.entity: an empty array is not allowed" in problems
    assert "schema: outcomeDesc: '' does not match" in problems


ENTRY: dict[str, Any] = {
    "sequence": 7,
    "occurred_at": "2026-01-01T00:00:00.000000Z",
    "actor_id": "",
    "actor_roles": [],
    "action": "request.refuse",
    "resource_type": "",
    "resource_id": "",
    "participant_pseudonyms": [],
    "purpose": "",
    "outcome": "deny",
    "http_status": 0,
    "decision_id": "",
    "policy_revision": "",
    "reasons": [],
    "request_id": "",
    "client_ip": "",
    "user_agent": "",
    "break_glass": False,
    "previous_hash": "0" * 64,
    "entry_hash": "1" * 64,
}


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"reasons": [""]},
        {"reasons": ["", "a"], "actor_roles": ["", "auditor"], "participant_pseudonyms": [""]},
        {"resource_type": "participant", "resource_id": "", "break_glass": True, "purpose": "emergency"},
        {"actor_id": "ü", "reasons": ["✓"], "user_agent": "a\u00a0b\u2028c\x00"},
    ],
    ids=["nothing-at-all", "an-empty-reason", "empty-items", "break-glass-over-a-list", "unicode"],
)
@pytest.mark.parametrize("log", ["alpha", "public", "a_community_slug"])
def test_an_entry_renders_as_a_valid_audit_event_whatever_it_holds(change: dict[str, Any], log: str) -> None:
    resource = fhir_resource({**ENTRY, **change}, log)

    assert fhir_problems(resource) == []
    assert resource["id"] == f"{log.replace('_', '.')}-7"


def test_an_export_written_in_rendering_1_still_verifies(tmp_path: Path) -> None:
    """A file the code before rendering 2 wrote (with its signed manifest and the log's public keys, kept here)."""
    path, keys = DATA / "alpha-v1.fhir.json", DATA / "audit-keys.pem"

    verified = verify_files(path, Path(f"{path}.manifest.json"), keys)

    assert (verified.intact, verified.checked) == (True, 6), verified.problem
    edited = tmp_path / path.name
    edited.write_text(path.read_text(encoding="utf-8").replace('"value":"u-1"', '"value":"u-9"', 1), encoding="utf-8")
    (tmp_path / f"{path.name}.manifest.json").write_bytes(Path(f"{path}.manifest.json").read_bytes())
    broken = verify_files(edited, Path(f"{edited}.manifest.json"), keys)
    assert broken.first_bad_sequence == 1, broken.problem


def test_a_bundle_of_a_rendering_this_verifier_does_not_know_is_refused() -> None:
    header = (
        '{"meta":{"tag":[{"code":"3","system":"urn:compliance-gateway:audit-export-rendering"}]},'
        '"resourceType":"Bundle","timestamp":"2026-01-01T00:00:00.000000Z","type":"collection","entry":[\n'
    )

    with pytest.raises(FormatError, match="rendering '3', which this verifier does not know"):
        next(fhir_read(io.StringIO(header + "]}\n"), log="alpha"))
    with pytest.raises(FormatError, match="not an audit export Bundle"):
        next(fhir_read(io.StringIO('{"resourceType":"Patient","entry":[\n]}\n'), log="alpha"))
    with pytest.raises(FormatError, match="the Bundle's meta is not an audit export's"):
        next(
            fhir_read(
                io.StringIO('{"meta":{"tag":["2"]},"resourceType":"Bundle","type":"collection","entry":[\n'),
                log="alpha",
            )
        )

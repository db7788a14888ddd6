"""The audit API: who reads events, how they filter and page, and exports that match their signed manifests."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from celery.exceptions import Reject
from django.utils import timezone
from django_tenants.utils import schema_context
from pytest_django import DjangoCaptureOnCommitCallbacks, Settings
from rest_framework.test import APIClient

from core.exports import ExportStatus
from security.audit.models import AuditEvent, AuditExport
from security.audit.offline import key_id, load_public_keys_pem, verify_signed
from security.audit.tasks import audit_export_task
from security.models import User
from tenants.models import Community
from tests.support.audit import recorded
from tests.support.canonical import reference_canonical_json
from tests.support.clients import ALPHA_HOST, BETA_HOST, MemberClient

EVENTS = "/api/v1/audit/events/"
EXPORTS = "/api/v1/audit/exports/"
KEYS = "/api/v1/audit/keys/"

SignIn = Callable[..., APIClient]


@pytest.fixture
def sign_in(member_client: MemberClient) -> SignIn:
    """A client signed in (password only) as a new member with ``role`` on alpha, or on beta."""

    def make(role: str, *, on_beta: bool = False) -> APIClient:
        return member_client(role, on_beta=on_beta)[0]

    return make


@pytest.fixture
def stepped_up(member_client: MemberClient) -> Callable[[], tuple[APIClient, User]]:
    """A compliance officer of alpha who has just signed in with password and TOTP."""
    return lambda: member_client("compliance_officer", second_factor=True)


@pytest.fixture
def export_dir(settings: Settings, tmp_path: Path) -> Path:
    """Export files go to a directory of this test's own."""
    settings.AUDIT_EXPORT_DIR = tmp_path
    return tmp_path


def seed(schema: str, events: Iterable[dict[str, Any]]) -> list[AuditEvent]:
    """Append events to ``schema``'s chain (participant reads, allowed, unless a field says otherwise)."""
    with schema_context(schema):
        return [
            recorded(**{"action": "participant.read", "resource_type": "participant", "outcome": "allow", **event})
            for event in events
        ]


def run_committed(callbacks: Iterable[Callable[[], Any]]) -> None:
    """Run a request's on-commit callbacks where they run in production: in the community's schema."""
    with schema_context("alpha"):
        for callback in callbacks:
            callback()


def run_tasks_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand in for the broker: a queued export task runs at once, through CommunityTask's checks."""

    def run_now(kwargs: dict[str, Any], **options: Any) -> None:
        audit_export_task(**kwargs)

    monkeypatch.setattr(audit_export_task, "apply_async", run_now)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


# --- the event list ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "status"),
    [("auditor", 200), ("compliance_officer", 200), ("researcher", 403), ("principal_investigator", 403)],
)
def test_only_auditors_and_compliance_officers_read_the_audit_events(role: str, status: int, sign_in: SignIn) -> None:
    seed("alpha", [{"resource_id": "p-1"}])

    response = sign_in(role).get(EVENTS)

    assert response.status_code == status
    if status == 403:
        assert response.json()["code"] == "action_not_permitted"
        assert "results" not in response.json()
    else:
        assert response["Cache-Control"] == "no-store"
        assert "p-1" in [event["resource_id"] for event in response.json()["results"]]


def test_filters_narrow_the_events_by_action_outcome_participant_and_actor(sign_in: SignIn) -> None:
    allowed, denied, other_participant, consent = seed(
        "alpha",
        [
            {"actor_id": "u-1", "resource_id": "p-1", "participant_pseudonyms": ["P-AAAAAAAAAA"]},
            {"actor_id": "u-2", "resource_id": "p-1", "participant_pseudonyms": ["P-AAAAAAAAAA"], "outcome": "deny"},
            {"actor_id": "u-1", "resource_id": "p-2", "participant_pseudonyms": ["P-BBBBBBBBBB"]},
            {"actor_id": "u-1", "action": "consent.read", "participant_pseudonyms": ["P-AAAAAAAAAA"]},
        ],
    )
    client = sign_in("auditor")

    def sequences(**filters: str) -> list[int]:
        response = client.get(EVENTS, filters)
        assert response.status_code == 200, response.content
        return [event["sequence"] for event in response.json()["results"]]

    assert sequences(action="participant.read", outcome="allow") == [allowed.sequence, other_participant.sequence]
    assert sequences(action="participant.read", outcome="deny") == [denied.sequence]
    assert sequences(participant="P-AAAAAAAAAA") == [allowed.sequence, denied.sequence, consent.sequence]
    assert sequences(participant="P-AAAAAAAAAA", action="consent.read") == [consent.sequence]
    assert sequences(actor="u-2") == [denied.sequence]
    assert sequences(resource_type="participant", resource_id="p-2") == [other_participant.sequence]
    assert sequences(participant="P-CCCCCCCCCC") == []


def test_the_time_range_is_since_inclusive_until_exclusive(sign_in: SignIn) -> None:
    first, second, third = seed("alpha", [{"resource_id": f"p-{n}"} for n in range(3)])
    client = sign_in("auditor")

    response = client.get(
        EVENTS,
        {"action": "participant.read", "since": second.occurred_at.isoformat(), "until": third.occurred_at.isoformat()},
    )

    assert response.status_code == 200
    assert [event["sequence"] for event in response.json()["results"]] == [second.sequence]
    assert first.sequence < second.sequence


def test_the_cursor_walks_every_page_once_in_sequence_order(sign_in: SignIn) -> None:
    seeded = [event.sequence for event in seed("alpha", [{"resource_id": f"p-{n}"} for n in range(7)])]
    client = sign_in("auditor")

    pages: list[list[int]] = []
    response = client.get(EVENTS, {"action": "participant.read", "limit": "3"})
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        pages.append([event["sequence"] for event in body["results"]])
        if body["next"] is None:
            break
        assert "action=participant.read" in body["next"]  # the filters travel with the cursor
        response = client.get(path_of(body["next"]))

    assert [len(page) for page in pages] == [3, 3, 1]
    walked = [sequence for page in pages for sequence in page]
    assert walked == seeded
    assert len(set(walked)) == len(walked)


# ``limit`` and ``cursor`` are the paginator's, with codes of their own (tests/core/test_pagination.py).
@pytest.mark.parametrize("query", [{"colour": "red"}, {"outcome": "maybe"}, {"format": "json"}])
def test_an_unknown_or_invalid_filter_is_a_400_problem(query: dict[str, str], sign_in: SignIn) -> None:
    response = sign_in("auditor").get(EVENTS, query)

    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "validation_failed"
    assert [error["field"] for error in body["errors"]] == list(query)


def test_an_alpha_token_is_refused_on_betas_host(sign_in: SignIn, client_for: Callable[[str], APIClient]) -> None:
    alpha_auditor = sign_in("auditor")
    on_beta = client_for(BETA_HOST)
    on_beta.credentials(HTTP_AUTHORIZATION=alpha_auditor._credentials["HTTP_AUTHORIZATION"])  # type: ignore[attr-defined]

    response = on_beta.get(EVENTS)

    assert response.status_code == 401
    assert "results" not in response.json()


def test_each_community_sees_its_own_events_only(sign_in: SignIn) -> None:
    seed("alpha", [{"resource_id": "alpha-only"}])
    seed("beta", [{"resource_id": "beta-only"}, {"resource_id": "beta-only"}])

    on_alpha = sign_in("auditor").get(EVENTS, {"limit": "1000"}).json()["results"]
    on_beta = sign_in("auditor", on_beta=True).get(EVENTS, {"limit": "1000"}).json()["results"]

    assert "alpha-only" in {event["resource_id"] for event in on_alpha}
    assert "beta-only" not in {event["resource_id"] for event in on_alpha}
    assert "alpha-only" not in {event["resource_id"] for event in on_beta}
    assert [event["resource_id"] for event in on_beta].count("beta-only") == 2


# --- exports -------------------------------------------------------------------------


def export_request(**overrides: str) -> dict[str, str]:
    return {"format": "jsonl", "since": (timezone.now() - timedelta(hours=1)).isoformat(), **overrides}


def test_asking_for_an_export_needs_a_recent_second_factor(sign_in: SignIn) -> None:
    response = sign_in("compliance_officer").post(EXPORTS, export_request(), format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "mfa_required"
    with schema_context("alpha"):
        assert not AuditExport.objects.exists()


def test_an_auditor_may_not_ask_for_an_export(sign_in: SignIn) -> None:
    response = sign_in("auditor").post(EXPORTS, export_request(), format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "action_not_permitted"


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "fhir"])
def test_an_export_is_built_and_its_file_matches_its_signed_manifest(
    fmt: str,
    stepped_up: Callable[[], tuple[APIClient, User]],
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
    client_for: Callable[[str], APIClient],
) -> None:
    seed("alpha", [{"resource_id": f"p-{n}"} for n in range(3)])
    client, officer = stepped_up()
    run_tasks_at_once(monkeypatch)

    with django_capture_on_commit_callbacks() as callbacks:
        accepted = client.post(EXPORTS, export_request(format=fmt), format="json")
    assert accepted.status_code == 202, accepted.content
    export = accepted.json()
    assert export["status"] == "pending"
    assert export["requested_by"] == str(officer.pk)
    assert accepted["Location"] == export["links"]["self"] == f"{EXPORTS}{export['id']}/"
    run_committed(callbacks)

    status = client.get(accepted["Location"])
    assert status.status_code == 200
    assert status.json()["status"] == "ready"
    assert set(status.json()["links"]) == {"self", "download", "manifest"}
    assert [listed["id"] for listed in client.get(EXPORTS).json()] == [export["id"]]

    manifest = client.get(status.json()["links"]["manifest"])
    assert manifest.status_code == 200
    assert manifest.json() == status.json()["manifest"]
    download = client.get(status.json()["links"]["download"])
    assert download.status_code == 200
    content = download.getvalue()  # reading it to the end closes the file, as a WSGI server would
    assert hashlib.sha256(content).hexdigest() == manifest.json()["sha256"]
    assert len(content) == manifest.json()["bytes"]
    assert download["Digest"] == "sha-256=" + base64.b64encode(hashlib.sha256(content).digest()).decode()
    assert manifest.json()["log"] == "alpha"
    assert manifest.json()["format"] == fmt
    assert manifest.json()["count"] >= 3

    # Anyone can check the signature with the published keys alone.
    keys = load_public_keys_pem(client_for(ALPHA_HOST).get(KEYS).json()["pem"])
    signature = manifest.json()["signature"]
    unsigned = {name: value for name, value in manifest.json().items() if name != "signature"}
    assert verify_signed(reference_canonical_json(unsigned), signature["signature"], signature["key_id"], keys)
    assert not verify_signed(
        reference_canonical_json({**unsigned, "count": 0}), signature["signature"], signature["key_id"], keys
    )


def test_a_jsonl_export_holds_one_line_per_event_of_the_range(
    stepped_up: Callable[[], tuple[APIClient, User]],
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    seeded = seed("alpha", [{"resource_id": f"p-{n}"} for n in range(3)])
    client, _ = stepped_up()
    run_tasks_at_once(monkeypatch)
    window = {"since": seeded[0].occurred_at.isoformat(), "until": seeded[-1].occurred_at.isoformat()}

    with django_capture_on_commit_callbacks() as callbacks:
        accepted = client.post(EXPORTS, export_request(**window), format="json")
    run_committed(callbacks)
    download = client.get(f"{accepted['Location']}download/")
    lines = download.getvalue().decode().splitlines()

    # [since, until): the last seeded event is outside.
    assert [json.loads(line)["sequence"] for line in lines] == [event.sequence for event in seeded[:2]]


def test_an_export_not_built_yet_is_a_409(stepped_up: Callable[[], tuple[APIClient, User]], export_dir: Path) -> None:
    client, _ = stepped_up()
    accepted = client.post(EXPORTS, export_request(), format="json")  # its task never runs: nothing commits

    for suffix in ("download/", "manifest/"):
        response = client.get(accepted["Location"] + suffix)
        assert response.status_code == 409
        assert response.json()["code"] == "export_not_ready"
    assert client.get(accepted["Location"]).json()["status"] == "pending"


def test_an_alpha_export_is_not_found_on_beta(
    stepped_up: Callable[[], tuple[APIClient, User]], export_dir: Path, sign_in: SignIn
) -> None:
    client, _ = stepped_up()
    export_id = client.post(EXPORTS, export_request(), format="json").json()["id"]
    beta_officer = sign_in("compliance_officer", on_beta=True)

    assert beta_officer.get(f"{EXPORTS}{export_id}/").status_code == 404
    assert beta_officer.get(EXPORTS).json() == []


def test_a_broker_that_refuses_the_task_marks_the_export_failed(
    stepped_up: Callable[[], tuple[APIClient, User]],
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    client, _ = stepped_up()

    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    monkeypatch.setattr(audit_export_task, "apply_async", broker_down)
    with django_capture_on_commit_callbacks() as callbacks:
        accepted = client.post(EXPORTS, export_request(), format="json")
    run_committed(callbacks)

    status = client.get(accepted["Location"]).json()
    assert status["status"] == "failed"
    assert status["error"] == "queue_unavailable"
    assert status["finished_at"] is not None
    assert client.get(accepted["Location"] + "download/").status_code == 409


def test_a_queued_export_of_a_requester_who_lost_the_role_is_not_built(
    stepped_up: Callable[[], tuple[APIClient, User]],
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    client, officer = stepped_up()
    queued: list[dict[str, Any]] = []
    monkeypatch.setattr(audit_export_task, "apply_async", lambda kwargs, **options: queued.append(kwargs))
    with django_capture_on_commit_callbacks() as callbacks:
        accepted = client.post(EXPORTS, export_request(), format="json")
    run_committed(callbacks)
    officer.memberships.update(role="researcher")

    with pytest.raises(Reject, match="action_not_permitted"):
        audit_export_task(**queued[0])

    with schema_context("alpha"):
        assert AuditExport.objects.get(pk=accepted.json()["id"]).status == ExportStatus.PENDING
    assert list(export_dir.rglob("*")) == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"until": (timezone.now() + timedelta(days=1)).isoformat()},
        {"since": timezone.now().isoformat(), "until": (timezone.now() - timedelta(hours=2)).isoformat()},
        {"format": "xlsx"},
        {"colour": "red"},
    ],
)
def test_an_export_request_that_makes_no_sense_is_a_400(
    overrides: dict[str, str], stepped_up: Callable[[], tuple[APIClient, User]]
) -> None:
    client, _ = stepped_up()

    response = client.post(EXPORTS, export_request(**overrides), format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "validation_failed"
    with schema_context("alpha"):
        assert not AuditExport.objects.exists()


# --- public keys ---------------------------------------------------------------------


def test_the_audit_keys_are_public_ed25519_keys_with_ids_and_pem(
    alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    response = client_for(ALPHA_HOST).get(KEYS)  # no token at all

    assert response.status_code == 200
    body = response.json()
    assert body["keys"]
    for key in body["keys"]:
        assert key["algorithm"] == "Ed25519"
        raw = base64.b64decode(key["public_key"])
        assert len(raw) == 32
        assert key["key_id"] == key_id(raw)
        assert key["key_id"] in body["pem"]
    assert "-----BEGIN PUBLIC KEY-----" in body["pem"]
    assert set(load_public_keys_pem(body["pem"])) == {key["key_id"] for key in body["keys"]}

"""Every rule of the policy, end to end: real tokens, the real permission, two communities."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
from django.db import connection, transaction
from django.test import override_settings
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from policy.enforcement import authorize
from policy.engine import reset_engine
from policy.errors import PolicyUnavailable
from policy.models import DecisionRecord
from security.models import User
from tenants.models import Community
from tests.doubles.opa import ANSWER_DEADLINE_SECONDS, DEADLINE_SECONDS, running_opa
from tests.factories import DEFAULT_PASSWORD
from tests.support.clients import ALPHA_HOST, BETA_HOST, MemberClient, bearer

pytestmark = pytest.mark.urls("tests.policy.probe_urls")

PARTICIPANT = f"/api/v1/probe/participants/{uuid.uuid4()}"


@pytest.fixture
def as_role(member_client: MemberClient) -> Callable[[str], APIClient]:
    return lambda role: member_client(role)[0]


def test_a_researcher_reads_participants_with_phi_redacted(as_role: Callable[[str], APIClient]) -> None:
    body = as_role("researcher").get(PARTICIPANT, {"consent": "research_use"}).json()

    assert body["allowed"] is True
    assert {"given_name", "mrn", "date_of_birth"} <= set(body["redact"])


def test_a_researcher_is_refused_a_participant_whose_consent_does_not_cover_the_purpose(
    as_role: Callable[[str], APIClient],
) -> None:
    response = as_role("researcher").get(PARTICIPANT)

    assert response.status_code == 403
    assert response.json()["code"] == "consent_not_covering_purpose"


def test_a_principal_investigator_reads_consenting_participants_in_full(as_role: Callable[[str], APIClient]) -> None:
    body = as_role("principal_investigator").get(PARTICIPANT, {"consent": "research_use"}).json()

    assert body["allowed"] is True
    assert body["redact"] == []


def test_phi_without_consent_for_the_purpose_is_refused_and_says_why(as_role: Callable[[str], APIClient]) -> None:
    client = as_role("principal_investigator")

    response = client.get(PARTICIPANT, {"consent": "research_use"}, HTTP_X_PURPOSE_OF_USE="genomic")

    # The caller may see this participant, so the denial is not hidden: it says why.
    assert response.status_code == 403
    assert response.json()["code"] == "consent_not_covering_purpose"
    assert "decision_id" in response.json()


def test_a_denied_route_is_403_with_the_reason_and_the_decision_id(as_role: Callable[[str], APIClient]) -> None:
    response = as_role("auditor").get("/api/v1/probe/participants")

    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "action_not_permitted"
    assert body["reasons"] == ["action_not_permitted"]
    with schema_context("alpha"):
        assert DecisionRecord.objects.get(decision_id=body["decision_id"]).allow is False


def test_a_hidden_resource_denial_looks_like_a_miss(as_role: Callable[[str], APIClient]) -> None:
    response = as_role("auditor").get(PARTICIPANT)

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_lists_carry_the_consent_condition(as_role: Callable[[str], APIClient]) -> None:
    body = as_role("coordinator").get("/api/v1/probe/participants").json()

    assert body["conditions"] == {"consent_scope": "research_use"}


def test_the_auditor_reads_audit_events(as_role: Callable[[str], APIClient]) -> None:
    assert as_role("auditor").get("/api/v1/probe/audit").status_code == 200
    assert as_role("researcher").get("/api/v1/probe/audit").status_code == 403


def test_elevated_actions_need_a_recent_second_factor(
    alpha: Community,
    member: Callable[..., User],
    login: Callable[..., dict[str, Any]],
    client_for: Callable[[str], APIClient],
) -> None:
    owner = member(alpha, "owner")
    password_only = bearer(client_for(ALPHA_HOST), login(ALPHA_HOST, owner)["access"])

    refused = password_only.get("/api/v1/probe/keys/rotate")
    assert refused.status_code == 403
    assert refused.json()["code"] == "mfa_required"

    seed = parse_qs(urlparse(password_only.post("/api/v1/auth/mfa/totp").json()["provisioning_uri"]).query)["secret"][0]
    password_only.post("/api/v1/auth/mfa/totp/confirm", {"code": pyotp.TOTP(seed).at(time.time() - 30)}, format="json")
    stepped_up = login(ALPHA_HOST, owner, DEFAULT_PASSWORD, otp=pyotp.TOTP(seed).now())["access"]
    allowed = bearer(client_for(ALPHA_HOST), stepped_up).get("/api/v1/probe/keys/rotate")
    assert allowed.status_code == 200
    assert allowed.json()["audit"] == "heightened"


def test_a_stated_purpose_must_be_a_known_one(as_role: Callable[[str], APIClient]) -> None:
    response = as_role("researcher").get(PARTICIPANT, HTTP_X_PURPOSE_OF_USE="curiosity")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_purpose"


def test_decisions_are_recorded_in_the_requests_community_only(
    as_role: Callable[[str], APIClient], alpha: Community, beta: Community
) -> None:
    decision_id = as_role("researcher").get(PARTICIPANT).json()["decision_id"]

    with schema_context("alpha"):
        record = DecisionRecord.objects.get(decision_id=decision_id)
        assert record.action == "participant.read"
        assert record.input["community"] == {"slug": "alpha", "status": "active"}
        assert record.input["subject"]["roles"] == ["researcher"]
        assert record.input_digest.startswith("sha256:")
    with schema_context("beta"):
        assert not DecisionRecord.objects.filter(decision_id=decision_id).exists()


def test_an_alpha_token_opens_no_probe_on_beta(
    as_role: Callable[[str], APIClient], beta: Community, client_for: Callable[[str], APIClient]
) -> None:
    token = as_role("principal_investigator")._credentials["HTTP_AUTHORIZATION"]  # type: ignore[attr-defined]
    on_beta = client_for(BETA_HOST)
    on_beta.credentials(HTTP_AUTHORIZATION=token)

    for route in (PARTICIPANT, "/api/v1/probe/participants", "/api/v1/probe/keys/rotate", "/api/v1/probe/audit"):
        assert on_beta.get(route).status_code == 401


def test_every_guarded_route_fails_closed_when_opa_is_down(as_role: Callable[[str], APIClient]) -> None:
    client = as_role("principal_investigator")
    with override_settings(POLICY_ENGINE="opa", OPA_URL="http://127.0.0.1:1", OPA_TIMEOUT_SECONDS=0.2):
        reset_engine()
        responses = [client.get(PARTICIPANT), client.get("/api/v1/me")]
    reset_engine()

    for response in responses:
        assert response.status_code == 503
        assert response.json()["code"] == "policy_unavailable"
        assert "email" not in response.json()


@pytest.mark.parametrize("mode", ["undefined", "non_boolean", "server_error", "slow"])
def test_every_opa_fault_is_503_never_data(mode: str, as_role: Callable[[str], APIClient]) -> None:
    client = as_role("principal_investigator")
    with (
        running_opa() as (url, state),
        override_settings(POLICY_ENGINE="opa", OPA_URL=url, OPA_TIMEOUT_SECONDS=ANSWER_DEADLINE_SECONDS),
    ):
        reset_engine()
        assert client.get("/api/v1/me").status_code == 200
        state.mode = mode
        # Too slow is a fault only against a deadline; the other faults fail however long the engine waits.
        with override_settings(OPA_TIMEOUT_SECONDS=DEADLINE_SECONDS if mode == "slow" else ANSWER_DEADLINE_SECONDS):
            response = client.get("/api/v1/me")
    reset_engine()

    assert response.status_code == 503
    assert response.json()["code"] == "policy_unavailable"


def test_a_policy_that_does_not_compile_keeps_the_service_unready_and_closed(
    as_role: Callable[[str], APIClient], tmp_path: Any, client_for: Callable[[str], APIClient]
) -> None:
    client = as_role("researcher")
    (tmp_path / "broken.rego").write_text("package gateway.authz\n\ndecision := {", encoding="utf-8")
    with override_settings(POLICY_DIR=tmp_path):
        reset_engine()
        denied = client.get("/api/v1/me")
        ready = client_for("localhost").get("/health/ready")
    reset_engine()

    assert denied.status_code == 503
    assert ready.status_code == 503
    assert ready.json()["checks"]["policy"]["status"] == "down"
    assert "policy" in ready.json()["detail"]


def test_a_decision_that_cannot_be_recorded_is_not_served(as_role: Callable[[str], APIClient]) -> None:
    client = as_role("researcher")
    with connection.cursor() as cursor:  # alpha's store refuses decision records (until the rollback)
        cursor.execute(
            "CREATE FUNCTION alpha.refuse_record() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'the store refuses this write'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER refuse_record BEFORE INSERT ON alpha.policy_decisionrecord "
            "FOR EACH ROW EXECUTE FUNCTION alpha.refuse_record()"
        )

    response = client.get(PARTICIPANT)

    # On a request the record goes out with the audit event: neither is kept, nothing is served.
    assert response.status_code == 503
    assert response.json()["code"] == "audit_unavailable"
    assert "decision_id" not in response.json()
    task_input = {
        "subject": {"id": "u-1", "community": "alpha", "roles": ["owner"], "amr": ["pwd"], "mfa_age_seconds": None},
        "community": {"slug": "alpha", "status": "active"},
        "action": "study.read",
        "resource": {"type": "study", "id": "s-1", "attributes": {}},
        "purpose": "research_use",
        "context": {"now": 1, "request_id": None, "client_ip": None, "break_glass": None},
    }
    # Anywhere else (a task) the record is written at once, and a refusal is the policy's 503.
    with schema_context("alpha"), pytest.raises(PolicyUnavailable), transaction.atomic():
        authorize(task_input)


def test_methods_without_a_declared_action_are_405_not_served(as_role: Callable[[str], APIClient]) -> None:
    client = as_role("principal_investigator")

    assert client.options("/api/v1/me").status_code == 405
    assert client.delete("/api/v1/me").status_code == 405
    assert client.head("/api/v1/me").status_code == 200


def test_a_view_that_is_not_a_policy_view_is_never_served_whatever_it_declares(
    as_role: Callable[[str], APIClient],
) -> None:
    response = as_role("principal_investigator").get("/api/v1/probe/untyped")

    assert response.status_code == 405
    assert "served" not in response.json()


def test_an_item_route_without_an_id_fails_closed_not_as_a_list(as_role: Callable[[str], APIClient]) -> None:
    response = as_role("principal_investigator").get("/api/v1/probe/study")

    assert response.status_code == 503
    assert response.json()["code"] == "policy_unavailable"

"""Obligations reach the data: redaction in serializers, fail closed without a decision."""

from __future__ import annotations

from typing import Any

import pytest
from django.http import HttpRequest
from django.test import RequestFactory
from django_tenants.utils import schema_context
from rest_framework import serializers

from policy.context import policy_context
from policy.decision import Decision, Obligations, parse_decision
from policy.enforcement import authorize
from policy.errors import PolicyDenied, PolicyUnavailable
from policy.obligations import RedactingSerializerMixin, apply_conditions
from tenants.models import Community


class ParticipantOut(RedactingSerializerMixin):
    id = serializers.CharField()
    pseudonym = serializers.CharField()
    given_name = serializers.CharField()
    mrn = serializers.CharField()


ROW = {"id": "p-1", "pseudonym": "P-7F3K", "given_name": "Ada", "mrn": "MRN-1"}


def request_with(redacted: tuple[str, ...]) -> HttpRequest:
    decision = Decision(True, ("role_grants_action",), Obligations(redact=redacted), "d-1", "r", "sha256:x")
    request = RequestFactory().get("/api/v1/participants/")
    policy_context(request).decision = decision
    return request


def test_listed_fields_are_blanked() -> None:
    data = ParticipantOut(ROW, context={"request": request_with(("given_name", "mrn"))}).data

    assert data == {"id": "p-1", "pseudonym": "P-7F3K", "given_name": None, "mrn": None}


def test_redact_all_keeps_only_identifiers() -> None:
    data = ParticipantOut(ROW, context={"request": request_with(("*",))}).data

    assert data == {"id": "p-1", "pseudonym": "P-7F3K", "given_name": None, "mrn": None}


class GuardedRow:
    """A row whose PHI must not be read (as if reading it decrypted it)."""

    id = "p-1"
    pseudonym = "P-7F3K"
    given_name = "Ada"

    @property
    def mrn(self) -> str:
        raise AssertionError("a redacted field was read")


def test_a_redacted_field_is_never_read_from_the_row() -> None:
    data = ParticipantOut(GuardedRow(), context={"request": request_with(("mrn",))}).data

    assert data == {"id": "p-1", "pseudonym": "P-7F3K", "given_name": "Ada", "mrn": None}


def test_nothing_is_blanked_without_the_obligation() -> None:
    assert ParticipantOut(ROW, context={"request": request_with(())}).data == ROW


def test_no_decision_means_no_data() -> None:
    with pytest.raises(serializers.ValidationError):
        _ = ParticipantOut(ROW, context={"request": RequestFactory().get("/")}).data


def document(role: str, action: str) -> dict[str, Any]:
    return {
        "subject": {"id": "u-1", "community": "alpha", "roles": [role], "amr": ["pwd"], "mfa_age_seconds": None},
        "community": {"slug": "alpha", "status": "active"},
        "action": action,
        "resource": {"type": "export", "id": "e-1", "attributes": {}},
        "purpose": "research_use",
        "context": {"now": 1, "request_id": None, "client_ip": None, "break_glass": None},
    }


def test_tasks_and_other_non_drf_paths_authorize_through_the_same_helper(alpha: Community) -> None:
    with schema_context("alpha"):
        assert authorize(document("principal_investigator", "export.read")).allow
        with pytest.raises(PolicyDenied) as denied:
            authorize(document("researcher", "export.read"))
    assert denied.value.code == "action_not_permitted"


def test_conditions_narrow_a_list_through_the_selectors_handlers(alpha: Community) -> None:
    queryset = Community.objects.all()

    narrowed = apply_conditions(queryset, {"slug": "alpha"}, {"slug": lambda rows, value: rows.filter(slug=value)})

    assert [community.slug for community in narrowed] == ["alpha"]


def test_a_condition_no_selector_understands_fails_closed(alpha: Community) -> None:
    with pytest.raises(PolicyUnavailable):
        apply_conditions(Community.objects.all(), {"consent_scope": "genomic"}, {})


def test_a_decision_without_its_obligations_is_not_a_decision() -> None:
    for document in (
        {"allow": True},
        {"allow": True, "reasons": ["role_grants_action"]},
        {"allow": True, "reasons": ["role_grants_action"], "obligations": {"redact": []}},
    ):
        with pytest.raises(PolicyUnavailable):
            parse_decision(document, decision_id="d", revision="r", input_digest="sha256:x")


def test_policy_error_and_malformed_input_are_not_denials_but_failures() -> None:
    obligations = {"redact": [], "require_mfa": False, "audit": "normal", "conditions": {}}
    for reason in ("policy_error", "malformed_input"):
        with pytest.raises(PolicyUnavailable):
            parse_decision(
                {"allow": False, "reasons": [reason], "obligations": obligations},
                decision_id="d",
                revision="r",
                input_digest="sha256:x",
            )

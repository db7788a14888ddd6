"""After a walkthrough of both communities, ``/metrics`` shows every family the walkthrough should have fed.

Counters are process-wide, so each assertion compares a scrape after the
walkthrough with one before it: a recorder call removed leaves its delta at 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from config.celery import declare_queues
from tests.support.clients import ALPHA_HOST, MemberClient
from tests.support.research import ADA, consent
from vault import keys

TOKEN = "walkthrough-scrape-token"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client_for: Callable[[str], APIClient]) -> Samples:
    response = client_for("localhost").get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for (sample_name, sample_labels), value in samples.items()
        if sample_name == name and set(labels.items()) <= set(sample_labels)
    )


def enrol(member_client: MemberClient, *, on_beta: bool) -> tuple[APIClient, str]:
    """A PI of the community and a consenting participant in the PI's study: the PI and the participant's id."""
    pi = member_client("principal_investigator", on_beta=on_beta)[0]
    study = pi.post(
        "/api/v1/studies/",
        {
            "title": "Sleep and memory",
            "protocol_number": "SLP-2026-01",
            "irb_approval_number": "IRB-77",
            "irb_approval_date": "2026-01-15",
            "status": "active",
        },
        format="json",
    ).json()
    coordinator = member_client("coordinator", on_beta=on_beta)[0]
    created = coordinator.post("/api/v1/participants/", {"study": study["id"], **ADA}, format="json")
    assert created.status_code == 201, created.content
    consent(coordinator, created.json(), "research_use")
    return pi, str(created.json()["id"])


def walkthrough(member_client: MemberClient, client_for: Callable[[str], APIClient]) -> dict[str, Any]:
    """Member reads in alpha and beta, a policy denial, a rate-limit refusal; what each step answered."""
    answered: dict[str, Any] = {}
    for name, on_beta in (("alpha", False), ("beta", True)):
        pi, participant = enrol(member_client, on_beta=on_beta)
        keys.cache.purge()  # the next read unwraps its key through the provider
        answered[f"{name}_read"] = pi.get(f"/api/v1/participants/{participant}/").status_code
        answered[f"{name}_reread"] = pi.get(f"/api/v1/participants/{participant}/").status_code
        answered[f"{name}_list"] = pi.get("/api/v1/participants/").status_code
    researcher = member_client("researcher")[0]
    answered["denied"] = researcher.post("/api/v1/studies/", {"title": "not mine"}, format="json").status_code
    with override_settings(RATE_LIMIT_IP_BURST=1, RATE_LIMIT_PER_IP=1):
        flood = client_for(ALPHA_HOST)
        answered["flood"] = [flood.get("/api/v1/me", REMOTE_ADDR="198.51.100.7").status_code for _ in range(4)]
    return answered


@pytest.fixture
def after_walkthrough(
    settings: Any, member_client: MemberClient, client_for: Callable[[str], APIClient]
) -> tuple[Samples, Samples, dict[str, Any]]:
    settings.METRICS_TOKEN = TOKEN
    declare_queues()
    before = scrape(client_for)
    answered = walkthrough(member_client, client_for)
    return before, scrape(client_for), answered


def delta(scrapes: tuple[Samples, Samples, dict[str, Any]], name: str, **labels: str) -> float:
    before, after, _ = scrapes
    return total(after, name, **labels) - total(before, name, **labels)


def test_the_walkthrough_answered_as_a_user_would_see_it(
    after_walkthrough: tuple[Samples, Samples, dict[str, Any]],
) -> None:
    answered = after_walkthrough[2]

    assert [answered[f"{name}_{step}"] for name in ("alpha", "beta") for step in ("read", "reread", "list")] == [
        200
    ] * 6
    assert answered["denied"] in {403, 404}
    assert 429 in answered["flood"]


def test_requests_are_counted_by_route_template_with_their_durations(
    after_walkthrough: tuple[Samples, Samples, dict[str, Any]],
) -> None:
    detail = {"method": "GET", "route": "/api/v1/participants/{pk}/"}

    assert delta(after_walkthrough, "gateway_http_requests_total", status="200", **detail) == 4
    assert delta(after_walkthrough, "gateway_http_request_duration_seconds_count", **detail) == 4
    assert delta(after_walkthrough, "gateway_http_requests_total", status="429") >= 1


def test_policy_decisions_are_counted_allow_and_deny_with_their_latency(
    after_walkthrough: tuple[Samples, Samples, dict[str, Any]],
) -> None:
    allowed = delta(after_walkthrough, "gateway_policy_decisions_total", result="allow")
    denied = delta(after_walkthrough, "gateway_policy_decisions_total", result="deny")

    assert allowed >= 6  # six participant reads, besides the studies and enrolments
    assert denied >= 1
    assert delta(after_walkthrough, "gateway_policy_decision_duration_seconds_count") == allowed + denied
    assert delta(after_walkthrough, "gateway_policy_decisions_total", result="allow", action="participant.read") >= 4


def test_key_provider_calls_and_data_key_cache_hits_are_counted(
    after_walkthrough: tuple[Samples, Samples, dict[str, Any]],
) -> None:
    assert delta(after_walkthrough, "gateway_key_provider_calls_total", operation="unwrap", outcome="ok") >= 2
    assert delta(after_walkthrough, "gateway_key_provider_calls_total", outcome="error") == 0
    assert delta(after_walkthrough, "gateway_data_key_cache_total", result="miss") >= 2
    assert delta(after_walkthrough, "gateway_data_key_cache_total", result="hit") >= 2


def test_rate_limit_refusals_are_counted(after_walkthrough: tuple[Samples, Samples, dict[str, Any]]) -> None:
    refused = after_walkthrough[2]["flood"].count(429)

    assert delta(after_walkthrough, "gateway_rate_limit_refusals_total") == refused


def test_audit_lag_queue_depths_and_dead_letters_are_in_the_scrape(
    after_walkthrough: tuple[Samples, Samples, dict[str, Any]],
) -> None:
    after = after_walkthrough[1]
    names = {name for name, _ in after}

    assert {"gateway_audit_chain_lag_seconds", "gateway_queue_depth", "gateway_dead_letters"} <= names
    assert total(after, "gateway_scrape_source_up", source="audit") == 1
    assert total(after, "gateway_scrape_source_up", source="broker") == 1

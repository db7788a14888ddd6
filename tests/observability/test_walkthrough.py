"""After a walkthrough of both communities, ``/metrics`` shows every family the walkthrough should have fed.

Counters are process-wide, so each assertion compares a scrape after the
walkthrough with one before it: a recorder call removed leaves its delta at 0.
"""

from __future__ import annotations

from typing import Any

from tests.observability.conftest import Samples, total

Walkthrough = tuple[Samples, Samples, dict[str, Any]]


def delta(scrapes: Walkthrough, name: str, **labels: str) -> float:
    before, after, _ = scrapes
    return total(after, name, **labels) - total(before, name, **labels)


def test_the_walkthrough_answered_as_a_user_would_see_it(
    after_walkthrough: Walkthrough,
) -> None:
    answered = after_walkthrough[2]

    assert [answered[f"{name}_{step}"] for name in ("alpha", "beta") for step in ("read", "reread", "list")] == [
        200
    ] * 6
    assert answered["denied"] in {403, 404}
    assert 429 in answered["flood"]


def test_requests_are_counted_by_route_template_with_their_durations(
    after_walkthrough: Walkthrough,
) -> None:
    detail = {"method": "GET", "route": "/api/v1/participants/{pk}/"}

    assert delta(after_walkthrough, "gateway_http_requests_total", status="200", **detail) == 4
    assert delta(after_walkthrough, "gateway_http_request_duration_seconds_count", **detail) == 4
    assert delta(after_walkthrough, "gateway_http_requests_total", status="429") >= 1


def test_policy_decisions_are_counted_allow_and_deny_with_their_latency(
    after_walkthrough: Walkthrough,
) -> None:
    allowed = delta(after_walkthrough, "gateway_policy_decisions_total", result="allow")
    denied = delta(after_walkthrough, "gateway_policy_decisions_total", result="deny")

    assert allowed >= 6  # six participant reads, besides the studies and enrolments
    assert denied >= 1
    assert delta(after_walkthrough, "gateway_policy_decision_duration_seconds_count") == allowed + denied
    assert delta(after_walkthrough, "gateway_policy_decisions_total", result="allow", action="participant.read") >= 4


def test_key_provider_calls_and_data_key_cache_hits_are_counted(
    after_walkthrough: Walkthrough,
) -> None:
    assert delta(after_walkthrough, "gateway_key_provider_calls_total", operation="unwrap", outcome="ok") >= 2
    assert delta(after_walkthrough, "gateway_key_provider_calls_total", outcome="error") == 0
    assert delta(after_walkthrough, "gateway_data_key_cache_total", result="miss") >= 2
    assert delta(after_walkthrough, "gateway_data_key_cache_total", result="hit") >= 2


def test_rate_limit_refusals_are_counted(after_walkthrough: Walkthrough) -> None:
    refused = after_walkthrough[2]["flood"].count(429)

    assert delta(after_walkthrough, "gateway_rate_limit_refusals_total") == refused


def test_audit_lag_queue_depths_and_dead_letters_are_in_the_scrape(
    after_walkthrough: Walkthrough,
) -> None:
    after = after_walkthrough[1]
    names = {name for name, _ in after}

    assert {"gateway_audit_chain_lag_seconds", "gateway_queue_depth", "gateway_dead_letters"} <= names
    assert total(after, "gateway_scrape_source_up", source="audit") == 1
    assert total(after, "gateway_scrape_source_up", source="broker") == 1

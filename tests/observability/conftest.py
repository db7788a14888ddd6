"""The metrics walkthrough: scrapes of ``/metrics`` before and after member reads in alpha and beta,
a policy denial and a rate-limit refusal (used by the walkthrough and the alert-rule tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from config.celery import declare_queues
from tests.support.clients import ALPHA_HOST, MemberClient
from tests.support.research import ACTIVE_STUDY, ADA, consent
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
        ACTIVE_STUDY,
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

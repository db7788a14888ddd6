"""Research routes stay in their community: ids of another community are 404 like random ones; writes change nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from security.models import User
from services.consents.models import Consent
from services.observations.models import Observation
from services.participants.models import Participant
from services.studies.models import Study
from tenants.models import Community
from tests.support.audit import chained_events
from tests.support.clients import ALPHA_HOST, bearer
from tests.support.research import beta_participant
from tests.support.tokens import token_for


@pytest.mark.parametrize(
    "route",
    [
        "/api/v1/participants/{participant}/",
        "/api/v1/participants/{participant}/consents/",
        "/api/v1/studies/{study}/",
        "/api/v1/observations/{participant}/",
    ],
)
def test_an_id_of_another_community_is_404_like_a_random_id_and_audited(
    route: str, pi: APIClient, coordinator: APIClient
) -> None:
    participant, study = beta_participant()
    client = coordinator if "consents" in route else pi
    theirs = client.get(route.format(participant=participant, study=study))
    random = client.get(route.format(participant=uuid.uuid4(), study=uuid.uuid4()))

    assert theirs.status_code == random.status_code == 404
    assert theirs.json()["code"] == random.json()["code"] == "not_found"
    assert "Grace" not in theirs.content.decode()
    with schema_context("alpha"):
        refused = chained_events().filter(outcome="deny", http_status=404)
        assert refused.filter(resource_id__in=[participant, study]).exists()


@pytest.mark.parametrize(
    ("method", "route", "body"),
    [
        ("patch", "/api/v1/participants/{participant}/", {"city": "Elsewhere"}),
        ("patch", "/api/v1/studies/{study}/", {"title": "Taken over"}),
        ("post", "/api/v1/participants/{participant}/consents/", {"scopes": ["contact"]}),
        ("post", "/api/v1/participants/{participant}/consents/{consent}/withdraw/", {}),
        ("post", "/api/v1/observations/", {"participant": "{participant}", "code_system": "x", "code": "1"}),
    ],
)
def test_a_write_naming_another_community_s_record_changes_nothing(
    method: str, route: str, body: dict[str, Any], pi: APIClient, coordinator: APIClient
) -> None:
    participant, study = beta_participant()
    with schema_context("beta"):
        withdrawable = Consent.objects.create(
            participant_id=participant, scopes=["research_use"], form_version="v1", signed_at=timezone.now()
        )
    ids = {"participant": participant, "study": study, "consent": str(withdrawable.pk)}
    client = pi if "studies" in route else coordinator
    filled = {key: value.format(**ids) if isinstance(value, str) else value for key, value in body.items()}
    response = getattr(client, method)(route.format(**ids), filled, format="json", HTTP_IF_MATCH="*")

    assert response.status_code in (400, 404), response.content
    with schema_context("beta"):
        assert Participant.objects.get(pk=participant).city is None
        assert Study.objects.get(pk=study).title == "Beta"
        assert Consent.objects.get(pk=withdrawable.pk).withdrawn_at is None
        assert not Observation.objects.exists()


def test_nothing_of_beta_shows_in_alpha_lists(pi: APIClient, researcher: APIClient) -> None:
    beta_participant()
    assert researcher.get("/api/v1/participants/").json()["results"] == []
    assert pi.get("/api/v1/studies/").json()["results"] == []


def test_a_beta_member_cannot_use_alpha_routes(
    beta: Community,
    member: Callable[..., User],
    client_for: Callable[[str], APIClient],
) -> None:
    token = token_for(member(beta, "principal_investigator"), beta)
    alpha_client = bearer(client_for(ALPHA_HOST), token)
    for route in ("/api/v1/studies/", "/api/v1/participants/", "/api/v1/observations/"):
        assert alpha_client.get(route).status_code == 401

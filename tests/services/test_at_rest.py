"""After the README's walkthrough, a ``pg_dump`` of the community's schema holds none of the PHI entered.

The walkthrough runs with real commits (no test transaction), as a server
would, and its rows are removed afterwards with the audit guard switched off.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from security.audit.sequencer import audit_chain
from security.models import User
from tenants.models import Community
from tests.factories import DEFAULT_PASSWORD, MembershipFactory, UserFactory
from tests.support.clients import ALPHA_HOST, bearer
from tests.support.commits import empty_community_tables

PHI = {
    "given_name": "Wilhelmina",
    "family_name": "Quartermaine",
    "date_of_birth": "1931-04-17",
    "mrn": "MRN-ZX-99817",
    "email": "w.quartermaine@example.net",
    "phone": "+1 555 0199 8841",
    "street_address": "4417 Juniper Hollow Road",
    "city": "Dunmore Falls",
    "state": "VT",
    "postal_code": "05401-7720",  # with its hyphen: a run of digits could turn up inside a hash
}
NOTE = "Wilhelmina reports dizziness after the second dose"
# An observation's free text: its display and a text value (up to 1,000 characters) are PHI like the note.
DISPLAY = "Tremor Wilhelmina noticed at the bakery"
TEXT_VALUE = "Her brother Ansgar Quartermaine has had the same tremor since 1988"


@pytest.fixture
def committed(django_db_setup: None, django_db_blocker: Any) -> Iterator[list[User]]:
    """Real commits in alpha; afterwards alpha's research and audit rows and the users made are removed."""
    users: list[User] = []
    with django_db_blocker.unblock():
        try:
            yield users
        finally:
            empty_community_tables("alpha")
            User.objects.filter(pk__in=[user.pk for user in users]).delete()


def _client(users: list[User], role: str, client_for: Callable[[str], APIClient]) -> APIClient:
    user = UserFactory.create()
    users.append(user)
    MembershipFactory.create(user=user, community=Community.objects.get(slug="alpha"), role=role)
    response = client_for(ALPHA_HOST).post(
        "/api/v1/auth/token", {"email": user.email, "password": DEFAULT_PASSWORD}, format="json"
    )
    return bearer(client_for(ALPHA_HOST), response.json()["access"])


def _server(settings: dict[str, Any]) -> list[str]:
    return ["-h", settings["HOST"], "-p", str(settings["PORT"]), "-U", settings["USER"]]


def _walkthrough(pi: APIClient, coordinator: APIClient) -> None:
    study = pi.post(
        "/api/v1/studies/",
        {"title": "Dose finding", "protocol_number": "DF-1", "irb_approval_number": "IRB-1"}
        | {"irb_approval_date": "2026-01-02", "status": "active"},
        format="json",
    ).json()
    participant = coordinator.post("/api/v1/participants/", {"study": study["id"], **PHI}, format="json").json()
    url = f"/api/v1/participants/{participant['id']}/"
    granted = coordinator.post(
        url + "consents/",
        {"scopes": ["research_use"], "form_version": "v1", "signed_at": "2026-02-01T00:00:00Z"},
        format="json",
    ).json()
    observation = {
        "participant": participant["id"],
        "code_system": "http://loinc.org",
        "code": "8867-4",
        "value": 61,
        "unit": "/min",
        "effective_date": "2026-03-04",
        "note": NOTE,
    }
    assert coordinator.post("/api/v1/observations/", observation, format="json").status_code == 201
    text = {**observation, "code": "94500-6", "display": DISPLAY, "value": TEXT_VALUE, "unit": ""}
    recorded = coordinator.post("/api/v1/observations/", text, format="json")
    assert recorded.status_code == 201
    read_back = pi.get(f"/api/v1/observations/{recorded.json()['id']}/").json()
    assert (read_back["display"], read_back["value"]) == (DISPLAY, TEXT_VALUE)
    assert pi.get(url).json()["given_name"] == PHI["given_name"]
    assert pi.get("/api/v1/observations/").status_code == 200
    coordinator.post(url + f"consents/{granted['id']}/withdraw/", {}, format="json")
    assert pi.get(url).status_code == 403


def test_a_dump_of_the_community_schema_holds_none_of_the_phi_entered(
    committed: list[User], client_for: Callable[[str], APIClient]
) -> None:
    pi = _client(committed, "principal_investigator", client_for)
    coordinator = _client(committed, "coordinator", client_for)
    _walkthrough(pi, coordinator)
    with schema_context("alpha"):
        audit_chain()

    settings = connection.settings_dict
    dump = subprocess.run(  # noqa: S603
        ["pg_dump", "--schema=alpha", "--no-owner", *_server(settings), settings["NAME"]],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PGPASSWORD": settings.get("PASSWORD") or ""},
    ).stdout

    assert "COPY alpha.participants_participant" in dump
    assert "DF-1" in dump, "the dump holds the walkthrough's data"
    # Two-letter values (the state) may turn up inside any ciphertext by chance: only long ones are searched.
    entered = (*PHI.values(), NOTE, DISPLAY, TEXT_VALUE, "Wilhelmina", "Quartermaine", "Ansgar", "bakery")
    searched = [value for value in entered if len(value) >= 5]
    leaked = [value for value in searched if value in dump]
    assert leaked == []

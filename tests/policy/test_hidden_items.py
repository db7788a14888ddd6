"""On every item route, a member without the action gets the same bytes for an existing id and for a random one.

The routes come from the community URLconf itself (:func:`policy.routes.walk`),
so a new item route is walked as soon as it exists, and must say here how to
make a record for it. The caller is an owner, whose role grants none of the
research, audit-export or break-glass actions: each answer is a refusal (404
where the route hides its denials, 403 otherwise) that must not depend on
whether the record exists. Only the per-request ids (``request_id``, and a
403's ``decision_id``) and the id in ``instance`` may differ.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from policy.routes import HTTP_METHODS, Route, walk
from security.models import User
from tenants.models import Community
from tests.factories import (
    AccountingRequestFactory,
    AuditExportFactory,
    BreakGlassGrantFactory,
    ConsentFactory,
    DeidentifiedExportFactory,
    ObservationFactory,
    ParticipantFactory,
    StudyFactory,
)
from tests.support.clients import MemberClient

ID_IN_PATH = re.compile(r"<uuid:(\w+)>")
PER_REQUEST_IDS = re.compile(rb',?\s*"(?:request_id|decision_id)":\s*(?:"[^"]*"|null)')


def _participant(community: Community, user: User) -> dict[str, Any]:
    return {"pk": ParticipantFactory.create(community=community).pk}


def _audit_export(community: Community, user: User) -> dict[str, Any]:
    return {"pk": AuditExportFactory.create(community=community, requested_by=user).pk}


def _export(community: Community, user: User) -> dict[str, Any]:
    return {"pk": DeidentifiedExportFactory.create(community=community, requested_by=user).pk}


def _consent(community: Community, user: User) -> dict[str, Any]:
    consent = ConsentFactory.create(community=community)
    return {"pk": consent.participant_id, "consent_id": consent.pk}


# How to make an existing record for each item route, by route name: the URL's ids of that record.
EXISTING: dict[str, Callable[[Community, User], dict[str, Any]]] = {
    "audit-export": _audit_export,
    "break-glass-review": lambda community, user: {
        "pk": BreakGlassGrantFactory.create(community=community, user_id=user.pk, scope_id=uuid.uuid4()).pk
    },
    "study-detail": lambda community, user: {"pk": StudyFactory.create(community=community).pk},
    "participant-detail": _participant,
    "participant-disclosures": _participant,
    "consent-list": _consent,
    "consent-withdraw": _consent,
    "consent-authorization": _consent,
    "observation-detail": lambda community, user: {"pk": ObservationFactory.create(community=community).pk},
    "export": _export,
    "participant-recorded-disclosures": _participant,
    "accounting-request-detail": lambda community, user: {
        "pk": AccountingRequestFactory.create(community=community).pk
    },
}
EXISTING["break-glass-revoke"] = EXISTING["break-glass-review"]
for _name in ("audit-export-download", "audit-export-manifest"):
    EXISTING[_name] = EXISTING["audit-export"]
for _name in ("accounting-request-extension", "accounting-request-provide", "accounting-request-copy"):
    EXISTING[_name] = EXISTING["accounting-request-detail"]
for _name in ("export-download", "export-manifest", "export-determination"):
    EXISTING[_name] = EXISTING["export"]


def item_routes() -> list[Route]:
    """The community routes with an id in their URL."""
    return [route for route in walk("config.urls_tenant") if ID_IN_PATH.search(route.path)]


def methods(route: Route) -> list[str]:
    view_class = route.view.view_class
    return [method for method in HTTP_METHODS if hasattr(view_class, method.lower())]


def url(route: Route, ids: dict[str, Any]) -> str:
    return "/" + ID_IN_PATH.sub(lambda found: str(ids[found.group(1)]), route.path)


def comparable(content: bytes, ids: dict[str, Any]) -> bytes:
    """The body without its per-request ids, the record's ids written as ``<id>``."""
    for value in ids.values():
        content = content.replace(str(value).encode(), b"<id>")
    return PER_REQUEST_IDS.sub(b"", content)


def ask(client: APIClient, method: str, path: str) -> Any:
    return getattr(client, method.lower())(path, {}, format="json") if method != "GET" else client.get(path)


def test_every_item_route_has_a_way_to_make_an_existing_record() -> None:
    assert {route.name for route in item_routes()} == set(EXISTING)


@pytest.mark.parametrize("route", item_routes(), ids=lambda route: str(route.name))
def test_an_existing_id_and_a_random_one_get_the_same_refusal(
    route: Route, alpha: Community, member_client: MemberClient
) -> None:
    owner, user = member_client("owner")
    existing = EXISTING[str(route.name)](alpha, user)
    random = {name: uuid.uuid4() for name in existing}

    for method in methods(route):
        seen = ask(owner, method, url(route, existing))
        unseen = ask(owner, method, url(route, random))

        assert seen.status_code == unseen.status_code, (method, seen.content, unseen.content)
        assert seen.status_code in {403, 404}, (method, seen.content)
        assert comparable(seen.content, existing) == comparable(unseen.content, random), method
        assert seen["Content-Type"] == unseen["Content-Type"] == "application/problem+json"

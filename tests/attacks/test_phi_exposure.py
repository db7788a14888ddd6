"""Every route, every role, every consent state: no response carries PHI the equivalent read would not serve.

Security review finding 1 (High) was one instance of a class: a write route
echoed the record the read route refused, and the read never reached the
participant's accounting of disclosures. This walk is the standing test of
the class. It serves every guarded route of the community URLconf, as every
role (and as a PI holding an emergency grant), for participants in each
consent state (none, covering the purpose, another purpose only, withdrawn)
and for a participant of another community, under the default purpose and
under the exempt one (``operations``). Each participant's PHI is made of
values found nowhere else, so a response body carries a participant's PHI
exactly when one of those values is in it.

The expectations are this test's own (:data:`SHOWS_THE_RECORD`,
:data:`ACCOUNTED`), written from the README's PHI-exposure table, not read
from the policy: deleting any action from the policy's PHI list makes a
request here serve PHI outside consent, or serve PHI the accounting does not
list, or echo less than the read would, and the walk fails. A new route fails
the walk until it is given a request here.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from policy.matrix import policy_matrix
from policy.routes import PUBLIC_ROUTES, is_guarded, walk
from security.audit.disclosures import disclosures
from security.models import User
from services.common import etag
from services.participants.models import Participant
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

pytestmark = pytest.mark.usefixtures("limiter_elsewhere")

STATES = ("none", "covering", "other_purpose", "withdrawn")
CROSS = "beta"  # a participant of the other community, addressed on alpha's host
DEFAULT_PURPOSE, EXEMPT_PURPOSE = "research_use", "operations"
ROLES = ("owner", "principal_investigator", "coordinator", "researcher", "auditor", "compliance_officer")
BREAK_GLASS = "principal_investigator+grant"  # a PI holding an emergency grant on the participant without consent

# The test's own table (the README's): the actions whose response shows the participant's record ...
SHOWS_THE_RECORD = frozenset(
    {"participant.read", "participant.list", "participant.update", "observation.read", "observation.list"}
)
# ... and those the participant's accounting of disclosures must list when they succeed.
ACCOUNTED = SHOWS_THE_RECORD | {"consent.list"}
# Reads an emergency grant opens without consent.
EMERGENCY_READS = frozenset({"participant.read", "participant.list", "observation.read", "observation.list"})
UNREDACTED_ROLES = frozenset({"principal_investigator", "coordinator", BREAK_GLASS})

# Routes the walk does not serve, and why: they act on the caller's own credentials and hold no participant data.
NOT_WALKED = {
    "auth-logout": "revokes the caller's session (the walk's own token)",
    "auth-mfa-totp": "starts the caller's own TOTP enrolment",
    "auth-mfa-totp-confirm": "confirms the caller's own TOTP enrolment",
}


def marker(kind: str, state: str) -> str:
    """A value of one participant's PHI that occurs nowhere else (kind and state in it, then random)."""
    return f"{kind}{state.replace('_', '')}{uuid.uuid4().hex[:10]}"


@dataclass
class Person:
    """One participant of the walk: its rows, and every PHI value it holds (the markers)."""

    state: str
    participant: Participant
    observation_id: str
    consent_id: str | None
    markers: list[str]

    @property
    def id(self) -> str:
        return str(self.participant.pk)


def person(community: Community, study: Any, state: str, day: int) -> Person:
    """A participant in ``state`` with an observation, every PHI value a marker (dates unique to them too)."""
    born = datetime.date(1931, 1, 1) + datetime.timedelta(days=day)
    seen = datetime.date(2019, 1, 1) + datetime.timedelta(days=day)
    texts: dict[str, Any] = {
        name: marker(name.replace("_", ""), state)
        for name in ("given_name", "family_name", "mrn", "phone", "street_address", "city")
    }
    email = f"{marker('mail', state)}@example.org"
    with schema_context(community.schema_name):
        participant = ParticipantFactory.create(
            study=study, date_of_birth=born, email=email, **texts, state="VT", postal_code="05401"
        )
        display, value_text, note = marker("display", state), marker("text", state), marker("note", state)
        observation = ObservationFactory.create(
            participant=participant,
            display=display,
            value_number=None,
            value_text=value_text,
            effective_date=seen,
            note=note,
        )
        consent_id = None
        if state != "none":
            scopes = ["contact"] if state == "other_purpose" else ["research_use"]
            withdrawn = timezone.now() if state == "withdrawn" else None
            consent = ConsentFactory.create(participant=participant, scopes=scopes, withdrawn_at=withdrawn)
            consent_id = str(consent.pk)
        participant.refresh_from_db()
    markers = [*texts.values(), email, born.isoformat(), display, value_text, note, seen.isoformat()]
    return Person(state, participant, str(observation.pk), consent_id, markers)


@dataclass
class World:
    """The walk's data: alpha's study and people by state, beta's person, ids of the other kinds of record."""

    study_id: str
    people: dict[str, Person]
    ids: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    """One request of the walk: about ``target`` (a state, or ``None`` for a whole list)."""

    method: str
    path: str
    target: str | None = None
    body: dict[str, Any] | None = None
    query: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    sent: tuple[str, ...] = ()  # PHI values the request itself sends (a write's echo must not carry them back)
    listing: bool = False  # a collection: which participants it is about is what its body names


def each_person(world: World, make: Callable[[Person], Call | None]) -> list[Call]:
    return [call for person in world.people.values() if (call := make(person)) is not None]


def new_participant(world: World) -> tuple[dict[str, Any], tuple[str, ...]]:
    given, family = marker("newgiven", "x"), marker("newfamily", "x")
    return {"study": world.study_id, "given_name": given, "family_name": family, "date_of_birth": "1932-02-29"}, (
        given,
        family,
    )


def participant_calls(world: World, method: str) -> list[Call]:
    if method == "GET":
        return [Call("GET", "/api/v1/participants/", query={"study": world.study_id}, listing=True)]
    body, sent = new_participant(world)
    return [Call("POST", "/api/v1/participants/", body=body, sent=sent)]


def participant_detail_calls(world: World, method: str) -> list[Call]:
    def read(p: Person) -> Call:
        return Call("GET", f"/api/v1/participants/{p.id}/", target=p.state)

    def update(p: Person, tag: str) -> Call:
        return Call("PATCH", f"/api/v1/participants/{p.id}/", target=p.state, body={}, headers={"If-Match": tag})

    if method == "GET":
        return each_person(world, read)
    return each_person(world, lambda p: update(p, etag(p.participant))) + each_person(world, lambda p: update(p, "*"))


def search_calls(world: World, method: str) -> list[Call]:
    def search(p: Person) -> Call:
        body = {"mrn": p.participant.mrn}
        return Call("POST", "/api/v1/participants/search/", target=p.state, body=body, listing=True)

    return each_person(world, search)


def disclosure_calls(world: World, method: str) -> list[Call]:
    return each_person(
        world, lambda p: Call("GET", f"/api/v1/participants/{p.id}/disclosures/", target=p.state)
    ) + each_person(
        world,
        lambda p: Call("GET", f"/api/v1/participants/{p.id}/disclosures/", target=p.state, query={"format": "csv"}),
    )


def consent_calls(world: World, method: str) -> list[Call]:
    body = {"scopes": ["research_use"], "form_version": "v9", "signed_at": "2026-02-01T10:00:00Z"}
    return each_person(
        world,
        lambda p: Call(
            method, f"/api/v1/participants/{p.id}/consents/", target=p.state, body=body, listing=method == "GET"
        ),
    )


def withdraw_calls(world: World, method: str) -> list[Call]:
    def withdraw(p: Person) -> Call | None:
        consent = p.consent_id or str(uuid.uuid4())
        return Call("POST", f"/api/v1/participants/{p.id}/consents/{consent}/withdraw/", target=p.state, body={})

    return each_person(world, withdraw)


def authorization_calls(world: World, method: str) -> list[Call]:
    def confirm(p: Person) -> Call | None:
        consent = p.consent_id or str(uuid.uuid4())
        return Call("POST", f"/api/v1/participants/{p.id}/consents/{consent}/authorization/", target=p.state, body={})

    return each_person(world, confirm)


def observation_calls(world: World, method: str) -> list[Call]:
    if method == "GET":
        listed = each_person(
            world,
            lambda p: Call("GET", "/api/v1/observations/", target=p.state, query={"participant": p.id}, listing=True),
        )
        return [Call("GET", "/api/v1/observations/", listing=True), *listed]

    def record(p: Person) -> Call:
        note, display, text = marker("newnote", "x"), marker("newdisplay", "x"), marker("newtext", "x")
        body = {
            "participant": p.id,
            "code_system": "http://loinc.org",
            "code": "94500-6",
            "display": display,
            "value": text,
            "effective_date": "2020-06-17",
            "note": note,
        }
        return Call("POST", "/api/v1/observations/", target=p.state, body=body, sent=(note, display, text))

    return each_person(world, record)


def observation_detail_calls(world: World, method: str) -> list[Call]:
    return each_person(world, lambda p: Call("GET", f"/api/v1/observations/{p.observation_id}/", target=p.state))


def by_id(path: str, kind: str, **extra: Any) -> Callable[[World, str], list[Call]]:
    """Calls on one record of another kind (a study, an export, a grant): no participant's own route."""

    def calls(world: World, method: str) -> list[Call]:
        return [Call(method, path.format(id=world.ids[kind]), **extra)]

    return calls


def plain(path: str, body: dict[str, Any] | None = None) -> Callable[[World, str], list[Call]]:
    def calls(world: World, method: str) -> list[Call]:
        return [Call(method, path, body=body if method != "GET" else None)]

    return calls


def study_detail_calls(world: World, method: str) -> list[Call]:
    headers = {"If-Match": world.ids["study_etag"]} if method == "PATCH" else {}
    return [Call(method, f"/api/v1/studies/{world.study_id}/", body={"title": "Walked"}, headers=headers)]


def break_glass_calls(world: World, method: str) -> list[Call]:
    if method == "GET":
        return [
            Call("GET", "/api/v1/break-glass/"),
            Call("GET", "/api/v1/break-glass/", query={"alarm": "true"}),
            Call("GET", "/api/v1/break-glass/", query={"format": "csv"}),
        ]
    return each_person(
        world,
        lambda p: Call(
            "POST",
            "/api/v1/break-glass/",
            target=p.state,
            body={"reason": "Admitted unconscious; allergy history needed now", "participant": p.id},
        ),
    )


def recorded_disclosure_calls(world: World, method: str) -> list[Call]:
    body = {
        "disclosed_at": "2026-02-01T10:00:00Z",
        "recipient_name": "Registrar",
        "recipient_organisation": "State Cancer Registry",
        "description": "Diagnosis and date of diagnosis",
        "purpose_statement": "Reporting required by state law.",
    }
    return each_person(
        world,
        lambda p: Call(
            method,
            f"/api/v1/participants/{p.id}/recorded-disclosures/",
            target=p.state,
            body=body,
            listing=method == "GET",
        ),
    )


def accounting_request_calls(world: World, method: str) -> list[Call]:
    if method == "GET":
        return [Call("GET", "/api/v1/accounting-requests/", listing=True)]
    return each_person(
        world,
        lambda p: Call(
            "POST", "/api/v1/accounting-requests/", target=p.state, body={"participant": p.id, "requester": "letter"}
        ),
    )


SUSPENSION = {
    "agency": "Office of Inspector General",
    "official": "Agent Smith",
    "form": "written",
    "statement": "An accounting would impede our investigation.",
    "starts_at": "2026-01-01T00:00:00Z",
    "ends_at": "2026-12-31T00:00:00Z",
}
EXTENSION = {"days": 30, "reason": "Records at a second site", "individual_told_on": "2026-01-10"}

STUDY = {"title": "Walk", "protocol_number": "WALK-2", "irb_approval_number": "IRB-9", "status": "draft"}
# An export request names its recipient and purpose; an officer's determination names the manifest it covers.
EXPORT_REQUEST = {
    "recipient": {"name": "Dana Reviewer", "organisation": "Example University"},
    "purpose": "Secondary analysis under the lab's data use agreement.",
}
DETERMINATION = {"statement": "No actual knowledge that this file identifies anyone.", "manifest_sha256": "0" * 64}
# Route name -> the requests that serve it for one method.
CALLS: dict[str, Callable[[World, str], list[Call]]] = {
    "me": plain("/api/v1/me"),
    "participant-list": participant_calls,
    "participant-detail": participant_detail_calls,
    "participant-disclosures": disclosure_calls,
    "participant-search": search_calls,
    "consent-list": consent_calls,
    "consent-withdraw": withdraw_calls,
    "consent-authorization": authorization_calls,
    "observation-list": observation_calls,
    "observation-detail": observation_detail_calls,
    "study-list": plain("/api/v1/studies/", STUDY),
    "study-detail": study_detail_calls,
    "exports": plain("/api/v1/exports/", {"study": "{study}", "format": "csv", **EXPORT_REQUEST}),
    "export": by_id("/api/v1/exports/{id}/", "export"),
    "export-download": by_id("/api/v1/exports/{id}/download/", "export"),
    "export-manifest": by_id("/api/v1/exports/{id}/manifest/", "export"),
    "export-determination": by_id("/api/v1/exports/{id}/determination/", "export", body=DETERMINATION),
    "audit-events": plain("/api/v1/audit/events/"),
    "audit-exports": plain("/api/v1/audit/exports/", {"format": "jsonl"}),
    "audit-export": by_id("/api/v1/audit/exports/{id}/", "audit_export"),
    "audit-export-download": by_id("/api/v1/audit/exports/{id}/download/", "audit_export"),
    "audit-export-manifest": by_id("/api/v1/audit/exports/{id}/manifest/", "audit_export"),
    "break-glass": break_glass_calls,
    "break-glass-review": by_id("/api/v1/break-glass/{id}/review/", "grant", body={"comment": "Reviewed"}),
    "break-glass-revoke": by_id("/api/v1/break-glass/{id}/revoke/", "grant", body={}),
    "participant-recorded-disclosures": recorded_disclosure_calls,
    "accounting-request-list": accounting_request_calls,
    "accounting-request-detail": by_id("/api/v1/accounting-requests/{id}/", "accounting_request"),
    "accounting-request-extension": by_id(
        "/api/v1/accounting-requests/{id}/extension/", "accounting_request", body=EXTENSION
    ),
    "accounting-request-provide": by_id("/api/v1/accounting-requests/{id}/provide/", "accounting_request", body={}),
    "accounting-request-copy": by_id("/api/v1/accounting-requests/{id}/copy/", "accounting_request"),
    "accounting-suspension-list": plain("/api/v1/accounting-suspensions/", SUSPENSION),
}


def guarded_routes() -> Iterator[tuple[str, str, str]]:
    """(route name, method, action) for every guarded route of the community URLconf."""
    for route in walk("config.urls_tenant"):
        if route.name in PUBLIC_ROUTES or not is_guarded(route.view):
            continue
        view = route.view.view_class
        for method, action in view.policy_actions.items():
            yield str(route.name), method, action


def sees_the_record(role: str, purpose: str, action: str, state: str) -> bool:
    """The PHI-exposure rule: whether ``role`` may be served ``state``'s record for ``action`` and ``purpose``."""
    if action not in SHOWS_THE_RECORD or role not in UNREDACTED_ROLES or purpose != DEFAULT_PURPOSE:
        return False
    return state == "covering" or (role == BREAK_GLASS and state == "none" and action in EMERGENCY_READS)


def body_of(response: Any) -> bytes:
    content = b"".join(response.streaming_content) if getattr(response, "streaming", False) else response.content
    return bytes(content)


def accounted(world: World) -> dict[str, int]:
    """How many disclosures each alpha participant's accounting lists now."""
    with schema_context("alpha"):
        return {state: len(disclosures(p.participant.pseudonym)) for state, p in world.people.items() if state != CROSS}


@dataclass
class Walk:
    """What the walk found wrong, one line per request."""

    problems: list[str] = field(default_factory=list)
    served: int = 0

    def check(self, condition: bool, what: str) -> None:
        if not condition:
            self.problems.append(what)


def serve(client: APIClient, call: Call, purpose: str) -> Any:
    headers: dict[str, Any] = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in call.headers.items()}
    headers["HTTP_X_PURPOSE_OF_USE"] = purpose
    if call.method == "GET":
        return client.get(call.path, call.query or {}, **headers)
    return client.generic(call.method, call.path, data=_json(call.body), content_type="application/json", **headers)


def _json(body: dict[str, Any] | None) -> str:
    return json.dumps(body or {})


def walk_one(found: Walk, world: World, role: str, client: APIClient, call: Call, purpose: str, action: str) -> None:
    """Serve one request in a savepoint (nothing it writes stays), and check what it served and accounted."""
    where = f"{role} {call.method} {call.path} {call.query or ''} [{call.target or 'list'}] purpose={purpose}"
    before = accounted(world)
    response = serve(client, call, purpose)
    body, ok = body_of(response), 200 <= response.status_code < 300
    found.check(response.status_code < 500, f"{where}: {response.status_code}")
    after = accounted(world)
    found.served += 1
    for state, person in world.people.items():
        carried = [value for value in person.markers if value.encode() in body]
        allowed = ok and state != CROSS and sees_the_record(role, purpose, action, state)
        found.check(not carried or allowed, f"{where}: carries {state}'s PHI ({len(carried)} values)")
        if state == CROSS:
            continue
        grew = after[state] > before[state]
        named = person.id.encode() in body or person.participant.pseudonym.encode() in body
        about_them = named or (call.target == state and not call.listing)
        disclosed = ok and action in ACCOUNTED and about_them
        # Nothing but a served PHI action about them is in their accounting; each one is, whatever the role.
        found.check(not grew or (ok and action in ACCOUNTED), f"{where}: {state}'s accounting lists a non-disclosure")
        found.check(grew or not disclosed, f"{where}: {state}'s accounting misses this disclosure")
        if ok and call.method == "PATCH" and call.target == state:
            # A write returns what the read would: the whole record where the read serves it.
            found.check(len(carried) == len(person.markers) - 4, f"{where}: the echo is not the read")
    found.check(not any(value.encode() in body for value in call.sent), f"{where}: echoes the PHI it was sent")


@pytest.fixture
def world(alpha: Community, beta: Community, member: Callable[..., User]) -> World:
    study = StudyFactory.create(community=alpha, status="active")
    people = {state: person(alpha, study, state, day) for day, state in enumerate(STATES)}
    people[CROSS] = person(beta, StudyFactory.create(community=beta), CROSS, 99)
    requester = member(alpha, "principal_investigator")
    with schema_context("alpha"):
        study.refresh_from_db()
        export = DeidentifiedExportFactory.create(study=study, requested_by=requester.pk)
        audit_export = AuditExportFactory.create(requested_by=requester.pk)
        grant = BreakGlassGrantFactory.create(user_id=requester.pk, scope_id=people["none"].id)
        request = AccountingRequestFactory.create(participant=people["covering"].participant)
    ids = {"export": str(export.pk), "audit_export": str(audit_export.pk), "grant": str(grant.pk)}
    ids["accounting_request"] = str(request.pk)
    ids["study_etag"] = etag(study)
    return World(str(study.pk), people, ids)


@pytest.fixture
def clients(member_client: MemberClient, world: World) -> dict[str, APIClient]:
    """A signed-in member (with a fresh second factor) per role, and a PI holding a grant on the unconsented one."""
    made = {role: member_client(role, second_factor=True)[0] for role in ROLES}
    client, user = member_client("principal_investigator", second_factor=True)
    with schema_context("alpha"):
        BreakGlassGrantFactory.create(user_id=user.pk, scope_id=world.people["none"].id)
    made[BREAK_GLASS] = client
    return made


def test_every_action_of_the_policys_phi_list_is_served_by_a_walked_route() -> None:
    walked = {action for name, _, action in guarded_routes() if name in CALLS}

    assert set(policy_matrix().phi_actions) <= walked
    assert set(policy_matrix().phi_actions) == ACCOUNTED


def test_every_guarded_route_is_walked_or_excused() -> None:
    names = {name for name, _, _ in guarded_routes()}

    assert names - set(CALLS) - set(NOT_WALKED) == set(), "give the new route a request in CALLS"
    assert set(CALLS) | set(NOT_WALKED) <= names, "a walked route no longer exists"


@pytest.mark.parametrize("purpose", [DEFAULT_PURPOSE, EXEMPT_PURPOSE])
def test_no_route_serves_phi_the_equivalent_read_would_not_or_leaves_it_out_of_the_accounting(
    world: World, clients: dict[str, APIClient], purpose: str
) -> None:
    found = Walk()
    for name, method, action in guarded_routes():
        if name in NOT_WALKED:
            continue
        for call in CALLS[name](world, method):
            call_ = Call(**{**call.__dict__, "body": _study_filled(call.body, world)})
            for role, client in clients.items():
                with transaction.atomic():
                    savepoint = transaction.savepoint()
                    walk_one(found, world, role, client, call_, purpose, action)
                    transaction.savepoint_rollback(savepoint)

    assert found.served > 500
    assert found.problems == [], "\n".join(found.problems)


def _study_filled(body: dict[str, Any] | None, world: World) -> dict[str, Any] | None:
    if body is None:
        return None
    return {key: world.study_id if value == "{study}" else value for key, value in body.items()}

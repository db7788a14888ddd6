"""Attacks on the consent rule and the accounting of disclosures: another route, another purpose, a redacted view.

Security review findings 1, 2 and 6. The walk in ``test_phi_exposure.py``
covers the class; these are the review's own scenarios, step by step, so a
reader sees each one refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from security.models import User
from services.accounting.selectors import accounting_entries
from services.participants.models import Participant
from tenants.models import Community
from tests.factories import ConsentFactory, ObservationFactory, ParticipantFactory
from tests.support.audit import recorded
from tests.support.breakglass import grant_in
from tests.support.clients import MemberClient
from tests.support.research import ADA, PHI_VALUES, consent

# Values long enough that an id, a pseudonym or a request id cannot hold them by chance ("NY" and "10001" can).
DISTINCT_PHI = [value for value in PHI_VALUES if len(value) >= 6]


def accounting(pseudonym: str) -> list[dict[str, Any]]:
    with schema_context("alpha"):
        return accounting_entries(Participant.objects.get(pseudonym=pseudonym))


def test_an_update_with_a_wildcard_if_match_reads_a_record_the_read_refuses(
    pi: APIClient, coordinator: APIClient, ada: dict[str, Any]
) -> None:
    """Security review finding 1: ``PATCH {}`` with ``If-Match: *`` returned the record the read refused."""
    url = f"/api/v1/participants/{ada['id']}/"
    assert pi.get(url).status_code == 403  # no consent yet

    leaked = pi.patch(url, {}, format="json", HTTP_IF_MATCH="*")
    stale = pi.patch(url, {}, format="json", HTTP_IF_MATCH='"x"')

    assert (leaked.status_code, leaked.json()["code"]) == (403, "consent_not_covering_purpose")
    assert (stale.status_code, stale.json()["code"]) == (403, "consent_not_covering_purpose")
    assert "ETag" not in stale  # a 409 would have handed out the tag the read refuses
    assert not any(value in (leaked.content + stale.content).decode() for value in DISTINCT_PHI)


def test_a_wildcard_if_match_is_refused_even_where_the_read_is_allowed(
    pi: APIClient, coordinator: APIClient, ada: dict[str, Any]
) -> None:
    """Security review finding 1: ``If-Match: *`` names no version, so it proves no read: 428."""
    consent(coordinator, ada, "research_use")

    response = pi.patch(f"/api/v1/participants/{ada['id']}/", {"city": "Bath"}, format="json", HTTP_IF_MATCH="*")

    assert (response.status_code, response.json()["code"]) == (428, "if_match_wildcard")
    assert pi.get(f"/api/v1/participants/{ada['id']}/").json()["city"] == ADA["city"]


def test_an_update_that_echoes_the_record_is_in_the_accounting(
    pi: APIClient, coordinator: APIClient, ada: dict[str, Any]
) -> None:
    """Security review finding 1: the echo of an update was a read the accounting never listed."""
    consent(coordinator, ada, "research_use")
    url = f"/api/v1/participants/{ada['id']}/"
    tag = pi.get(url)["ETag"]
    before = len(accounting(ada["pseudonym"]))

    updated = pi.patch(url, {"city": "Bath"}, format="json", HTTP_IF_MATCH=tag)

    assert updated.status_code == 200
    assert updated.json()["given_name"] == ADA["given_name"]
    listed = accounting(ada["pseudonym"])
    assert len(listed) == before + 1
    assert listed[-1]["description"] == "The participant's record, returned after an update to it, identifiers included"


def test_an_enrolment_echoes_none_of_the_phi_it_stored(coordinator: APIClient, study: dict[str, Any]) -> None:
    """Security review finding 1, the other writes: a create's echo is the minimal body (ids, no PHI)."""
    response = coordinator.post("/api/v1/participants/", {"study": study["id"], **ADA}, format="json")

    assert response.status_code == 201
    assert response.json()["pseudonym"]
    assert all(response.json()[field] is None for field in ADA)
    assert not any(value in response.content.decode() for value in DISTINCT_PHI)


def test_a_break_glass_read_stated_as_operations_escapes_the_accounting(
    alpha: Community, member_client: MemberClient
) -> None:
    """Security review finding 2: a grant's reads stated as ``operations`` were dropped from the accounting."""
    client, holder = member_client("principal_investigator", second_factor=True)
    participant = ParticipantFactory.create(community=alpha)
    grant_in("alpha", holder, str(participant.pk))
    url = f"/api/v1/participants/{participant.pk}/"

    hidden = client.get(url, HTTP_X_PURPOSE_OF_USE="operations")
    open_read = client.get(url, HTTP_X_PURPOSE_OF_USE="emergency")

    assert (hidden.status_code, hidden.json()["code"]) == (403, "purpose_not_permitted")
    assert open_read.status_code == 200
    listed = accounting(participant.pseudonym)
    assert [(entry["purpose"], entry["break_glass"]) for entry in listed] == [("emergency", True)]


def test_a_break_glass_event_on_record_as_operations_is_listed_all_the_same(
    alpha: Community, member: Callable[..., User]
) -> None:
    """Security review finding 2: whatever purpose an emergency access names, the accounting lists it."""
    participant = ParticipantFactory.create(community=alpha)
    reader = member(alpha, "principal_investigator")
    with schema_context("alpha"):
        for break_glass in (True, False):
            recorded(
                actor_id=str(reader.pk),
                actor_roles=["principal_investigator"],
                action="participant.read",
                resource_type="participant",
                resource_id=str(participant.pk),
                participant_pseudonyms=[participant.pseudonym],
                purpose="operations",
                outcome="allow",
                decision_id=uuid.uuid4().hex,
                break_glass=break_glass,
            )

    assert [entry["break_glass"] for entry in accounting(participant.pseudonym)] == [True]


def consented_observation(alpha: Community, *, withdrawn: bool) -> tuple[Participant, str]:
    participant = ParticipantFactory.create(community=alpha)
    with schema_context("alpha"):
        ConsentFactory.create(participant=participant, withdrawn_at=None)
        if withdrawn:
            participant.consents.update(withdrawn_at=participant.created_at)
        observation = ObservationFactory.create(
            participant=participant, display="Told us about her brother", value_number=None, value_text="positive"
        )
    return participant, str(observation.pk)


def test_a_researcher_keeps_seeing_participants_who_withdrew(alpha: Community, researcher: APIClient) -> None:
    """Security review finding 6: the redacted view ignored consent withdrawal."""
    withdrawn, observation = consented_observation(alpha, withdrawn=True)

    listed = researcher.get("/api/v1/observations/", {"participant": str(withdrawn.pk)})
    read = researcher.get(f"/api/v1/observations/{observation}/")
    person = researcher.get(f"/api/v1/participants/{withdrawn.pk}/")

    assert listed.status_code == 200
    assert listed.json()["results"] == []
    assert (read.status_code, read.json()["code"]) == (403, "consent_not_covering_purpose")
    assert (person.status_code, person.json()["code"]) == (403, "consent_not_covering_purpose")


def test_a_researcher_reads_free_text_and_record_times_safe_harbor_would_drop(
    alpha: Community, researcher: APIClient
) -> None:
    """Security review finding 6: display, text values and record timestamps reached the redacted view."""
    consenting, observation = consented_observation(alpha, withdrawn=False)

    read = researcher.get(f"/api/v1/observations/{observation}/").json()
    person = researcher.get(f"/api/v1/participants/{consenting.pk}/").json()

    assert read["code"] == "8867-4"
    assert (read["display"], read["value"], read["note"], read["effective_date"], read["created_at"]) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert (person["created_at"], person["updated_at"], person["date_of_birth"]) == (None, None, None)


def test_an_authorization_recorded_after_a_read_with_a_backdated_signature_does_not_hide_the_read(
    pi: APIClient, coordinator: APIClient, ada: dict[str, Any]
) -> None:
    """The accounting's exemption for an authorization: a consent counts from when it was on record, not before."""
    consent(coordinator, ada, "research_use")
    assert pi.get(f"/api/v1/participants/{ada['id']}/").status_code == 200
    listed = accounting(ada["pseudonym"])

    backdated = coordinator.post(
        f"/api/v1/participants/{ada['id']}/consents/",
        {
            "scopes": ["research_use"],
            "form_version": "AUTH-9",
            "signed_at": "2020-01-01T00:00:00Z",
            "hipaa_authorization": True,
        },
        format="json",
    )

    assert backdated.status_code == 201
    assert backdated.json()["hipaa_authorization"] is True
    assert accounting(ada["pseudonym"]) == listed
    assert [entry["basis"]["kind"] for entry in listed] == ["none_on_record"]


def test_a_member_from_another_organisation_cannot_pass_as_workforce_by_stating_operations(
    alpha: Community, member_client: MemberClient
) -> None:
    """Use or disclosure is the affiliation on record, never a purpose the reader states."""
    client, reader = member_client("principal_investigator")
    participant = ParticipantFactory.create(community=alpha)
    with schema_context("alpha"):
        ConsentFactory.create(participant=participant)
    url = f"/api/v1/participants/{participant.pk}/"

    as_operations = client.get(url, HTTP_X_PURPOSE_OF_USE="operations")
    as_research = client.get(url)

    assert as_operations.status_code == 403
    assert as_research.status_code == 200
    [entry] = accounting(participant.pseudonym)
    assert (entry["category"], entry["recipient"]["affiliation"]) == ("disclosure", "external")
    assert entry["recipient"]["user_id"] == str(reader.pk)

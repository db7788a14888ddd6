"""Issue 16 items 7 and 8: a determination independent of the study team, and one that is on the audit log.

Before the fix a compliance officer on the study's team could sign off its
export, and an ``ExportDetermination`` row inserted in the database (with the
manifest's digest, which anyone reading the row can compute) released the
file with no ``export.determine`` event in the community's chained log.
"""

from __future__ import annotations

from django.utils import timezone
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from security.audit.selectors import audit_events
from security.models import User
from services.exports.models import DeidentifiedExport, ExportDetermination
from services.exports.selectors import manifest_sha256
from services.studies.models import Study
from tenants.models import Community
from tests.factories import ConsentFactory, ParticipantFactory, StudyTeamMemberFactory
from tests.support.clients import MemberClient
from tests.support.exports import CONSENTED, EXPORTS, GRACE, ReadyExport, determine, downloaded


def test_attack_a_compliance_officer_on_the_studys_team_cannot_determine_its_export(
    pi: tuple[APIClient, User], officer: tuple[APIClient, User], ready_export: ReadyExport, study: Study
) -> None:
    client, user = officer
    with schema_context("alpha"):
        StudyTeamMemberFactory.create(study=study, user_id=user.id)
    export_id = ready_export(determined=False)["id"]

    refused = determine(client, export_id)

    assert (refused.status_code, refused.json()["code"]) == (403, "study_team_determination")
    assert pi[0].get(f"{EXPORTS}{export_id}/download/").json()["code"] == "determination_required"
    with schema_context("alpha"):
        outcomes = [(e.outcome, e.reasons) for e in audit_events(action="export.determine", outcome="deny")]
    assert ("deny", ["study_team_determination"]) in outcomes


def test_an_officer_on_another_studys_team_may_determine(
    pi: tuple[APIClient, User], officer: tuple[APIClient, User], ready_export: ReadyExport, alpha: Community
) -> None:
    client, user = officer
    StudyTeamMemberFactory.create(community=alpha, user_id=user.id)  # on a new study's team
    export_id = ready_export(determined=False)["id"]

    assert determine(client, export_id).status_code == 201
    assert downloaded(pi[0], export_id)


def test_the_determine_event_names_the_manifest_it_covers(
    officer: tuple[APIClient, User], ready_export: ReadyExport
) -> None:
    export_id = ready_export()["id"]
    with schema_context("alpha"):
        export = DeidentifiedExport.objects.get(pk=export_id)
        events = list(audit_events(action="export.determine", resource_id=export_id))
    (event,) = [e for e in events if any(reason.startswith("manifest_sha256:") for reason in e.reasons)]
    assert event.reasons == [f"manifest_sha256:{manifest_sha256(export.manifest or {})}"]
    assert event.actor_id == str(officer[1].id)
    assert all(e.reasons != event.reasons for e in events if e.pk != event.pk)


def test_attack_a_determination_inserted_in_the_database_without_its_event_does_not_release_the_file(
    pi: tuple[APIClient, User], ready_export: ReadyExport, member_client: MemberClient
) -> None:
    """An operator with database access writes the row an officer would have; no event, no download."""
    client, _ = pi
    export_id = ready_export(determined=False)["id"]
    officer_review, _ = member_client("compliance_officer", second_factor=True)
    officer_review.get(f"{EXPORTS}{export_id}/determination/")  # an officer looked: an audited GET, not a sign-off
    with schema_context("alpha"):
        export = DeidentifiedExport.objects.get(pk=export_id)
        ExportDetermination.objects.create(
            export=export,
            determined_by="00000000-0000-0000-0000-000000000001",
            determined_at=timezone.now(),
            statement="I have no actual knowledge of anything at all, says the operator.",
            manifest_sha256=manifest_sha256(export.manifest or {}),
        )

    response = client.get(f"{EXPORTS}{export_id}/download/")

    assert (response.status_code, response.json()["code"]) == (409, "determination_not_recorded")
    assert "R-" not in response.content.decode()


def test_the_officer_sees_the_studys_earlier_exports_and_who_enrolled_since_the_last(
    officer: tuple[APIClient, User], ready_export: ReadyExport, study: Study
) -> None:
    """Issue 16 item 9: a participant added between two exports is what differencing the two files finds."""
    first = ready_export()["id"]
    with schema_context("alpha"):
        joined = ParticipantFactory.create(study=study, **{**GRACE, "given_name": "Newcomer"})
        ConsentFactory.create(participant=joined, signed_at=timezone.now(), **CONSENTED)
    second = ready_export(determined=False)["id"]

    review = officer[0].get(f"{EXPORTS}{second}/determination/").json()["study_history"]

    assert [item["id"] for item in review["earlier_exports"]] == [first]
    assert review["earlier_exports"][0]["participant_count"] == 2
    assert review["previous_export"] == first
    assert review["participants_enrolled_since_previous_export"] == 1
    first_review = officer[0].get(f"{EXPORTS}{first}/determination/").json()["study_history"]
    assert first_review == {
        "earlier_exports": [],
        "previous_export": None,
        "participants_enrolled_since_previous_export": None,
    }

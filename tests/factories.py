"""factory_boy factories for every model the tests build, public and tenant alike.

A tenant model's factory takes ``community=``: the row (and every row its
sub-factories make) is created inside that community's schema, so "the same
thing in two communities" costs one line each::

    study = StudyFactory.create(community=alpha)
    participant = ParticipantFactory.create(community=beta)   # with a study of beta's own

Rows the service writes only along its own guarded paths have no factory on
purpose: audit events, staged events and checkpoints (append-only, written by
``security.audit.staging`` and the sequencer), decision records (the policy's
enforcement) and data keys (``vault.keys``). A test makes those the way the
service does.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any, Generic, TypeVar

from django.db.models import Model
from django.utils import timezone
from django_tenants.utils import schema_context
from factory import declarations
from factory.declarations import LazyFunction, SubFactory
from factory.django import DjangoModelFactory, Password
from factory.faker import Faker

from core.exports import ExportStatus
from security.audit.models import AuditExport, ExportFormat
from security.breakglass.models import BreakGlassGrant
from security.breakglass.models import Scope as GrantScope
from security.models import Membership, User
from security.roles import Role
from services.accounting.models import AccountingRequest
from services.consents.models import Consent, Scope
from services.exports.models import DeidentifiedExport
from services.exports.models import ExportFormat as DatasetFormat
from services.observations.models import Observation
from services.participants.models import Participant
from services.studies.models import Study, StudyTeamMember
from tenants.models import Community

DEFAULT_PASSWORD = "correct horse battery staple 42"
M = TypeVar("M", bound=Model)


class UserFactory(DjangoModelFactory[User]):
    """A user with the default password."""

    class Meta:
        model = User

    email = declarations.Sequence(lambda number: f"person{number}@example.org")
    password = Password(DEFAULT_PASSWORD)


class MembershipFactory(DjangoModelFactory[Membership]):
    """A membership; pass ``user`` and ``community``."""

    class Meta:
        model = Membership

    role = Role.RESEARCHER


class TenantFactory(DjangoModelFactory[M], Generic[M]):
    """A factory of a tenant model: ``create(community=...)`` builds inside that community's schema."""

    class Meta:
        abstract = True

    @classmethod
    def create(cls, community: Community | None = None, **kwargs: Any) -> M:
        """Create the row (and its sub-factories' rows) in ``community``'s schema, or in the current one."""
        if community is None:
            return super().create(**kwargs)
        with schema_context(community.schema_name):
            return super().create(**kwargs)


class StudyFactory(TenantFactory[Study]):
    """A draft study with a unique protocol number."""

    class Meta:
        model = Study

    title = "Sleep and memory"
    protocol_number = LazyFunction(lambda: f"P-{uuid.uuid4().hex[:10].upper()}")


class StudyTeamMemberFactory(TenantFactory[StudyTeamMember]):
    """A member on a new study's team; pass ``user_id`` (a member of the same community)."""

    class Meta:
        model = StudyTeamMember

    study = SubFactory(StudyFactory)


class ParticipantFactory(TenantFactory[Participant]):
    """A participant of a new study, with made-up PHI (names, birth date, MRN, address)."""

    class Meta:
        model = Participant

    study = SubFactory(StudyFactory)
    given_name = Faker("first_name")
    family_name = Faker("last_name")
    date_of_birth = Faker("date_of_birth", minimum_age=18, maximum_age=89)
    mrn = LazyFunction(lambda: f"MRN-{uuid.uuid4().hex[:12].upper()}")
    email = Faker("email")
    city = Faker("city")
    state = "CA"
    postal_code = "94110"


class ConsentFactory(TenantFactory[Consent]):
    """A consent to research use, signed a day ago, not withdrawn."""

    class Meta:
        model = Consent

    participant = SubFactory(ParticipantFactory)
    scopes = LazyFunction(lambda: [Scope.RESEARCH_USE])
    form_version = "v1"
    signed_at = LazyFunction(lambda: timezone.now() - datetime.timedelta(days=1))


class ObservationFactory(TenantFactory[Observation]):
    """A coded numeric observation (LOINC heart rate) with an encrypted date and note."""

    class Meta:
        model = Observation

    participant = SubFactory(ParticipantFactory)
    code_system = "http://loinc.org"
    code = "8867-4"
    display = "Heart rate"
    value_number = 72
    unit = "/min"
    effective_date = LazyFunction(lambda: timezone.localdate() - datetime.timedelta(days=3))
    note = "Resting, seated."


class BreakGlassGrantFactory(TenantFactory[BreakGlassGrant]):
    """An open grant over one participant, for an hour; pass ``user_id`` and ``scope_id``."""

    class Meta:
        model = BreakGlassGrant

    scope = GrantScope.PARTICIPANT
    reason = "Emergency: the participant was admitted unconscious."
    expires_at = LazyFunction(lambda: timezone.now() + datetime.timedelta(hours=1))


class DeidentifiedExportFactory(TenantFactory[DeidentifiedExport]):
    """A pending de-identified export of a new study, as a request leaves it; pass ``requested_by``."""

    class Meta:
        model = DeidentifiedExport

    study = SubFactory(StudyFactory)
    format = DatasetFormat.CSV
    status = ExportStatus.PENDING


class AuditExportFactory(TenantFactory[AuditExport]):
    """A pending audit export of the last day, as a request leaves it; pass ``requested_by``."""

    class Meta:
        model = AuditExport

    format = ExportFormat.JSONL
    since = LazyFunction(lambda: timezone.now() - datetime.timedelta(days=1))
    until = LazyFunction(timezone.now)
    status = ExportStatus.PENDING


class AccountingRequestFactory(TenantFactory[AccountingRequest]):
    """An open request for an accounting of disclosures, received now and due in 60 days."""

    class Meta:
        model = AccountingRequest

    participant = SubFactory(ParticipantFactory)
    received_at = LazyFunction(timezone.now)
    due_at = LazyFunction(lambda: timezone.now() + datetime.timedelta(days=60))
    requester = "letter"
    opened_by = "operator:test"

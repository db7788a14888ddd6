"""Encrypted fields: what is stored, what opens, what refuses to open, and what is never written."""

from __future__ import annotations

import datetime
import pickle
from typing import Any

import pytest
from django.core import serializers
from django.db import connection, transaction
from django.test import override_settings
from django_tenants.utils import schema_context

from services.participants.models import Participant
from services.studies.models import Study
from tenants.models import Community
from tests.doubles.vault import VaultState
from tests.factories import ParticipantFactory
from vault.errors import CiphertextIntegrityError, KeyServiceUnavailable, PlaintextRefused
from vault.fields import EncryptedField, blind_index_filter
from vault.keys import cache, community_keys_create
from vault.models import DataKey

PHI = {
    "given_name": "Ada",
    "family_name": "Lovelace-Byron",
    "date_of_birth": datetime.date(1815, 12, 10),
    "sex": "female",
    "mrn": "MRN-0042-77",
    "email": "ada.lovelace@example.org",
    "phone": "+44 20 7946 0958",
    "street_address": "12 St James's Square",
    "city": "Westminster",
    "state": "London",
    "postal_code": "SW1Y 4JH",
}


# Every test here runs with the local provider and with the Vault double.
pytestmark = pytest.mark.usefixtures("key_provider")


def enrol(**overrides: Any) -> Participant:
    """A participant with :data:`PHI` (or what ``overrides`` change), in a study of their own, in the current schema."""
    return ParticipantFactory.create(**{**PHI, **overrides})


def raw_row(participant_id: Any) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM participants_participant WHERE id = %s", [participant_id])
        columns = [column.name for column in cursor.description]
        return dict(zip(columns, cursor.fetchone(), strict=True))


def test_phi_goes_in_encrypted_and_comes_back_whole(alpha: Community) -> None:
    with schema_context("alpha"):
        participant = enrol()
        loaded = Participant.objects.get(pk=participant.pk)

        assert {name: getattr(loaded, name) for name in PHI} == PHI
        row = raw_row(participant.pk)
    stored = " ".join(str(value) for value in row.values())
    for value in PHI.values():
        assert str(value) not in stored
    assert all(str(row[name]).startswith("v1.") for name in PHI)


def test_the_same_value_never_encrypts_the_same_way(alpha: Community) -> None:
    with schema_context("alpha"):
        first, second = enrol(), enrol()
        assert raw_row(first.pk)["given_name"] != raw_row(second.pk)["given_name"]


def copy_column(source: Any, target: Any, column: str, target_column: str | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE participants_participant SET {target_column or column} = "  # noqa: S608 - test-chosen names
            f"(SELECT {column} FROM participants_participant WHERE id = %s) WHERE id = %s",
            [source, target],
        )


def test_a_ciphertext_copied_to_another_row_does_not_open(alpha: Community) -> None:
    with schema_context("alpha"):
        victim, other = enrol(), enrol(given_name="Charles")
        copy_column(victim.pk, other.pk, "given_name")

        with pytest.raises(CiphertextIntegrityError):
            _ = Participant.objects.get(pk=other.pk).given_name


def test_a_ciphertext_moved_to_another_field_does_not_open(alpha: Community) -> None:
    with schema_context("alpha"):
        participant = enrol()
        copy_column(participant.pk, participant.pk, "mrn", "city")

        with pytest.raises(CiphertextIntegrityError):
            _ = Participant.objects.get(pk=participant.pk).city


def test_a_ciphertext_carried_to_another_community_does_not_open(alpha: Community, beta: Community) -> None:
    with schema_context("alpha"):
        stolen = raw_row(enrol().pk)
    with schema_context("beta"):
        twin = enrol(given_name="Someone")
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE participants_participant SET id = %s, given_name = %s WHERE id = %s",
                [stolen["id"], stolen["given_name"], twin.pk],
            )
        with pytest.raises(CiphertextIntegrityError):
            _ = Participant.objects.get(pk=stolen["id"]).given_name


def test_a_tampered_ciphertext_does_not_open(alpha: Community) -> None:
    with schema_context("alpha"):
        participant = enrol()
        token = raw_row(participant.pk)["mrn"]
        tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        with connection.cursor() as cursor:
            cursor.execute("UPDATE participants_participant SET mrn = %s WHERE id = %s", [tampered, participant.pk])

        with pytest.raises(CiphertextIntegrityError):
            _ = Participant.objects.get(pk=participant.pk).mrn


def test_plaintext_can_neither_be_written_around_the_model_nor_searched(alpha: Community) -> None:
    with schema_context("alpha"):
        participant = enrol()

        with pytest.raises(PlaintextRefused), transaction.atomic():
            Participant.objects.filter(pk=participant.pk).update(given_name="Mallory")
        with pytest.raises(PlaintextRefused), transaction.atomic():
            list(Participant.objects.filter(given_name="Ada"))
        assert Participant.objects.get(pk=participant.pk).given_name == "Ada"


def test_exact_search_by_mrn_and_email_goes_through_the_blind_index(alpha: Community, beta: Community) -> None:
    with schema_context("alpha"):
        participant = enrol()
        enrol(mrn="MRN-9999", email="someone@example.org")

        by_mrn = Participant.objects.filter(blind_index_filter(Participant, "mrn_index", " mrn-0042-77 "))
        by_email = Participant.objects.filter(
            blind_index_filter(Participant, "email_index", "ADA.Lovelace@example.org")
        )

        assert [row.pk for row in by_mrn] == [participant.pk]
        assert [row.pk for row in by_email] == [participant.pk]
        alpha_index = raw_row(participant.pk)["mrn_index"]
        assert PHI["mrn"] not in alpha_index
    with schema_context("beta"):
        twin = enrol()
        assert raw_row(twin.pk)["mrn_index"] != alpha_index  # one index key per community


def test_values_copied_through_the_model_are_resealed_for_their_new_row(alpha: Community) -> None:
    with schema_context("alpha"):
        original = Participant.objects.get(pk=enrol().pk)
        copy = Participant(study=original.study)
        copy.given_name = original.given_name
        copy.save()

        assert Participant.objects.get(pk=copy.pk).given_name == "Ada"


def test_phi_outside_a_community_schema_is_refused(alpha: Community) -> None:
    study_row = None
    with schema_context("alpha"):
        study_row = Study.objects.create(protocol_number="P-9", title="x")
    participant = Participant(study=study_row, given_name="Ada")

    with pytest.raises(KeyServiceUnavailable):
        participant.save()


def test_a_warm_cache_reads_without_calling_the_provider(alpha: Community, vault_double: VaultState) -> None:
    with schema_context("alpha"):
        DataKey.objects.all().delete()
        community_keys_create("alpha")
        ids = [enrol().pk for _ in range(5)]
        before = dict(vault_double.calls)

        for _ in range(20):
            for participant in Participant.objects.filter(pk__in=ids):
                assert participant.given_name == "Ada"

        assert dict(vault_double.calls) == before


def test_a_sealed_vault_is_felt_only_when_the_cache_bounds_expire(alpha: Community, vault_double: VaultState) -> None:
    with schema_context("alpha"):
        DataKey.objects.all().delete()
        community_keys_create("alpha")
        participant_id = enrol().pk
        vault_double.sealed = True

        assert Participant.objects.get(pk=participant_id).given_name == "Ada"  # warm: still served
        enrol(given_name="Grace")  # writes too

        with override_settings(DATA_KEY_CACHE_MAX_USES=0):
            with pytest.raises(KeyServiceUnavailable):
                _ = Participant.objects.get(pk=participant_id).given_name
            count = Participant.objects.count()
            with pytest.raises(KeyServiceUnavailable), transaction.atomic():
                enrol(given_name="Never written")
            assert Participant.objects.count() == count  # never an unencrypted write


def test_the_cache_evicts_by_age_and_by_uses(alpha: Community) -> None:
    with schema_context("alpha"):
        participant_id = enrol().pk
        cache.purge()
        calls = cache.provider_calls
        for _ in range(10):
            _ = Participant.objects.get(pk=participant_id).given_name
        assert cache.provider_calls == calls + 1
        with override_settings(DATA_KEY_CACHE_MAX_AGE_SECONDS=0):
            for _ in range(3):
                _ = Participant.objects.get(pk=participant_id).given_name
        assert cache.provider_calls == calls + 4
        with override_settings(DATA_KEY_CACHE_MAX_USES=2):
            cache.purge()
            for _ in range(4):
                _ = Participant.objects.get(pk=participant_id).given_name
        # Uses 1 (unwrap), 2 (expired at the bound), 1 (unwrap), 2: two more unwraps.
        assert cache.provider_calls == calls + 6


def test_a_cached_key_is_never_shown(alpha: Community) -> None:
    with schema_context("alpha"):
        _ = enrol().given_name
    entry = next(iter(cache._entries.values()))
    assert entry.key.hex() not in repr(entry)


def test_the_blind_index_cannot_be_left_behind_by_a_partial_save(alpha: Community) -> None:
    with schema_context("alpha"):
        participant = Participant.objects.get(pk=enrol().pk)
        participant.mrn = "MRN-NEW"

        with pytest.raises(PlaintextRefused), transaction.atomic():
            participant.save(update_fields=["mrn"])
        participant.save(update_fields=["mrn", "mrn_index"])

        assert Participant.objects.filter(blind_index_filter(Participant, "mrn_index", "MRN-NEW")).exists()
        assert not Participant.objects.filter(blind_index_filter(Participant, "mrn_index", str(PHI["mrn"]))).exists()
        with pytest.raises(PlaintextRefused), transaction.atomic():
            Participant.objects.filter(pk=participant.pk).update(mrn=None)


def test_serialisers_and_pickles_carry_ciphertext_never_plaintext(alpha: Community) -> None:
    with schema_context("alpha"):
        participant = Participant.objects.get(pk=enrol().pk)
        assert participant.family_name == PHI["family_name"]  # opened

        dumped = serializers.serialize("json", [participant])
        pickled = pickle.dumps(participant)

        # The sealed tokens are base64: "Ada" may turn up inside one by chance. Look for PHI around them.
        tokens = [str(field.value_from_object(participant)) for field in participant._meta.concrete_fields
                  if isinstance(field, EncryptedField) and field.value_from_object(participant)]  # fmt: skip
        assert len(tokens) == len(PHI)
        dumped_around, pickled_around = dumped, pickled
        for token in tokens:
            assert token in dumped
            dumped_around, pickled_around = (
                dumped_around.replace(token, ""),
                pickled_around.replace(token.encode(), b""),
            )
        for value in PHI.values():
            assert str(value) not in dumped_around
            assert str(value).encode() not in pickled_around
        revived = pickle.loads(pickled)  # noqa: S301 - our own bytes
        assert revived.family_name == PHI["family_name"]
        revived.family_name = "Changed"
        with pytest.raises(PlaintextRefused):
            pickle.dumps(revived)


def test_a_sealed_value_lifted_from_values_is_refused_elsewhere(alpha: Community) -> None:
    with schema_context("alpha"):
        source, target = enrol(), enrol(given_name="Someone")
        lifted = Participant.objects.filter(pk=source.pk).values_list("given_name", flat=True).get()
        row = Participant.objects.get(pk=target.pk)
        row.given_name = lifted

        with pytest.raises(CiphertextIntegrityError), transaction.atomic():
            row.save()


def test_an_unchanged_value_is_not_re_encrypted_on_save(alpha: Community) -> None:
    with schema_context("alpha"):
        participant = Participant.objects.get(pk=enrol().pk)
        before = raw_row(participant.pk)["given_name"]
        assert participant.given_name == "Ada"

        participant.save()

        assert raw_row(participant.pk)["given_name"] == before

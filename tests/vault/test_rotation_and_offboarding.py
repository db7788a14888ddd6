"""Rotation re-encrypts everything and retires old versions; offboarding makes every ciphertext unreadable."""

from __future__ import annotations

import datetime
import io
import time
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django_tenants.utils import schema_context, schema_exists

from config.celery import app as celery_app
from services.participants.models import Participant
from tenants.lifecycle import Purged, communities_purge_offboarded, community_create
from tenants.models import Community, CommunityStatus
from tests.factories import ParticipantFactory, StudyFactory
from vault import rotation
from vault.errors import KeyDestroyed
from vault.fields import blind_index_filter
from vault.keys import cache, community_keys_rotate
from vault.models import DataKey, KeyKind, RotationJob
from vault.providers import get_provider
from vault.tasks import reencrypt_community_task

# Every test here runs with the local provider and with the Vault double.
pytestmark = pytest.mark.usefixtures("key_provider")


def enrol(count: int) -> list[Any]:
    """The ids of ``count`` new participants of one new study, named and numbered in order, in the current schema."""
    study = StudyFactory.create(title="Rotation")
    return [
        ParticipantFactory.create(
            study=study, given_name=f"Name {n}", mrn=f"MRN-{n:04d}", date_of_birth=datetime.date(1970, 1, 1 + n % 28)
        ).pk
        for n in range(count)
    ]


def versions_in_rows() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT split_part(given_name, '.', 2), split_part(mrn_index, ':', 1) FROM participants_participant"
        )
        return {value for row in cursor.fetchall() for value in row}


def test_rotate_keys_reencrypts_every_row_and_retires_the_old_version(alpha: Community) -> None:
    with schema_context("alpha"):
        ids = enrol(7)
        old_data_key = DataKey.objects.get(kind=KeyKind.DATA)
        assert versions_in_rows() == {"1"}
    out = io.StringIO()

    call_command("rotate_keys", "--community", "alpha", "--inline", "--batch-size", "3", stdout=out)

    assert "alpha: new key version 2" in out.getvalue()
    assert "7/7 rows" in out.getvalue()
    with schema_context("alpha"):
        assert versions_in_rows() == {"2"}
        assert [participant.given_name for participant in Participant.objects.filter(pk__in=ids).order_by("mrn_index")]
        assert Participant.objects.filter(blind_index_filter(Participant, "mrn_index", "MRN-0003")).count() == 1
        assert not DataKey.objects.filter(version=1).exists()
        assert RotationJob.objects.get(target_version=2).rows_done == 7
    with pytest.raises(KeyDestroyed):
        get_provider().unwrap("alpha", old_data_key.wrapped)


def test_old_versions_keep_decrypting_while_the_rotation_runs(alpha: Community) -> None:
    with schema_context("alpha"):
        ids = enrol(3)
        community_keys_rotate("alpha")
        cache.purge()
        assert [Participant.objects.get(pk=pk).given_name for pk in ids] == ["Name 0", "Name 1", "Name 2"]
        newcomer = enrol(1)[0]
        with connection.cursor() as cursor:
            cursor.execute("SELECT given_name FROM participants_participant WHERE id = %s", [newcomer])
            assert cursor.fetchone()[0].startswith("v1.2.")  # new writes use the new version at once


def test_an_interrupted_rotation_resumes_where_it_stopped(alpha: Community, monkeypatch: pytest.MonkeyPatch) -> None:
    with schema_context("alpha"):
        enrol(6)
    real_reseal = rotation._reseal
    batches: list[int] = []

    def crash_after_two_batches(rows: list[Any]) -> None:
        if len(batches) == 2:
            raise RuntimeError("worker lost")
        batches.append(len(rows))
        real_reseal(rows)

    monkeypatch.setattr(rotation, "_reseal", crash_after_two_batches)
    with pytest.raises(RuntimeError):
        call_command("rotate_keys", "--community", "alpha", "--inline", "--batch-size", "2", stdout=io.StringIO())
    with schema_context("alpha"):
        job = RotationJob.objects.get(target_version=2)
        assert job.rows_done == 4
        assert DataKey.objects.filter(version=1).exists()  # not retired: rows still need it
    monkeypatch.setattr(rotation, "_reseal", real_reseal)
    out = io.StringIO()

    call_command("rotate_keys", "--community", "alpha", "--inline", "--batch-size", "2", stdout=out)

    assert "resuming the rotation of alpha to key version 2" in out.getvalue()
    with schema_context("alpha"):
        assert versions_in_rows() == {"2"}
        assert RotationJob.objects.get(target_version=2).status == "done"


def test_rotation_runs_as_a_celery_task_on_rabbitmq(alpha: Community) -> None:
    with schema_context("alpha"):
        enrol(2)
        version = community_keys_rotate("alpha")
    queue = f"test-rotation-{time.time_ns()}"
    result = reencrypt_community_task.apply_async(("alpha", version), queue=queue)
    with celery_app.connection_for_read() as broker:
        channel: Any = broker.default_channel
        message = None
        for _ in range(50):
            message = channel.basic_get(queue, no_ack=True)
            if message is not None:
                break
            time.sleep(0.1)
        channel.queue_delete(queue)
    assert message is not None
    assert message.headers["task"] == "vault.tasks.reencrypt_community_task"
    assert message.headers["id"] == result.id
    assert reencrypt_community_task.run("alpha", version) == 2  # what the worker does with it
    with schema_context("alpha"):
        assert versions_in_rows() == {str(version)}


def test_offboarding_destroys_the_keys_so_nothing_saved_before_can_be_read(db: None) -> None:
    community_create(slug="gamma", name="Gamma", domain="gamma.localhost", actor_id="operator:test")
    with schema_context("gamma"):
        participant_id = enrol(1)[0]
        wrapped = DataKey.objects.get(kind=KeyKind.DATA).wrapped
        with connection.cursor() as cursor:
            cursor.execute("SELECT given_name FROM participants_participant WHERE id = %s", [participant_id])
            ciphertext = cursor.fetchone()[0]
    out = io.StringIO()

    call_command("offboard_community", "--slug", "gamma", "--confirm", "gamma", stdout=out)

    assert "keys are destroyed" in out.getvalue()
    assert Community.objects.get(slug="gamma").status == CommunityStatus.OFFBOARDED
    with pytest.raises(KeyDestroyed):
        get_provider().unwrap("gamma", wrapped)  # anyone holding the wrapped key and the row: nothing
    with schema_context("gamma"):
        assert not DataKey.objects.exists()  # the wrapped keys went too
        with pytest.raises(KeyDestroyed):
            _ = Participant.objects.get(pk=participant_id).given_name
    assert ciphertext.startswith("v1.")


def test_offboarding_needs_the_slug_twice_and_happens_once(alpha: Community) -> None:
    with pytest.raises(CommandError, match="offboarding_not_confirmed"):
        call_command("offboard_community", "--slug", "alpha", "--confirm", "yes", stdout=io.StringIO())
    assert Community.objects.get(slug="alpha").status == CommunityStatus.ACTIVE


def test_the_schema_is_dropped_only_after_the_grace_period(db: None, settings: Any) -> None:
    settings.OFFBOARD_GRACE_DAYS = 30
    community_create(slug="delta", name="Delta", domain="delta.localhost", actor_id="operator:test")
    call_command("offboard_community", "--slug", "delta", "--confirm", "delta", stdout=io.StringIO())

    assert communities_purge_offboarded(actor_id="operator:test") == Purged()
    assert schema_exists("delta")
    with time_machine.travel(datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(days=31)):
        out = io.StringIO()
        call_command("purge_offboarded_communities", stdout=out)

    assert out.getvalue().strip() == "dropped 1 schema(s): delta"
    assert not schema_exists("delta")
    assert not Community.objects.filter(slug="delta").exists()


def test_a_batch_size_below_one_is_refused_before_anything_happens(alpha: Community) -> None:
    with pytest.raises(CommandError, match="at least 1"):
        call_command("rotate_keys", "--community", "alpha", "--inline", "--batch-size", "0", stdout=io.StringIO())
    with schema_context("alpha"):
        assert not RotationJob.objects.exists()
        with pytest.raises(ValueError, match="at least 1"):
            rotation.reencrypt_community(target_version=2, batch_size=0)


def test_a_second_rotation_resumes_the_first_instead_of_starting_another(alpha: Community) -> None:
    with schema_context("alpha"):
        first = rotation.rotation_start("alpha")
        second = rotation.rotation_start("alpha")

        assert first.pk == second.pk
        assert sorted(set(DataKey.objects.values_list("version", flat=True))) == [1, 2]


def test_rotation_does_not_retire_while_rows_remain_on_an_old_version(
    alpha: Community, monkeypatch: pytest.MonkeyPatch
) -> None:
    with schema_context("alpha"):
        enrol(3)
        job = rotation.rotation_start("alpha")
        monkeypatch.setattr(rotation, "_sweep", lambda *args: None)
        monkeypatch.setattr(rotation, "_reencrypt_model", lambda *args: None)

        with pytest.raises(RuntimeError, match="still on an old key version"):
            rotation.reencrypt_community(target_version=job.target_version)

        assert DataKey.objects.filter(version=1).exists()
        assert Participant.objects.count() == 3
        assert all(participant.given_name for participant in Participant.objects.all())


TRIM_FAILS = (500, b'{"errors":["local node not active but active cluster node not found"]}', "application/json")


@pytest.mark.parametrize("key_provider", ["vault-double"], indirect=True)
def test_a_failed_trim_leaves_the_community_working_and_a_rerun_finishes_the_retire(
    alpha: Community, vault_double: Any
) -> None:
    with schema_context("alpha"):
        enrol(3)
    vault_double.proxy_answers["transit/keys/community-alpha/trim"] = TRIM_FAILS

    with pytest.raises(CommandError, match="key_service_unavailable"):
        call_command("rotate_keys", "--community", "alpha", "--inline", stdout=io.StringIO())

    assert vault_double.keys["community-alpha"].min_decryption_version == 2  # the config step went through
    cache.purge()
    with schema_context("alpha"):
        assert Participant.objects.filter(blind_index_filter(Participant, "mrn_index", "MRN-0001")).count() == 1
        enrol(1)  # searching and writing need only the live versions
        assert RotationJob.objects.get(target_version=2).status == "running"
    del vault_double.proxy_answers["transit/keys/community-alpha/trim"]
    out = io.StringIO()

    call_command("rotate_keys", "--community", "alpha", "--inline", stdout=out)

    assert "resuming the rotation of alpha to key version 2" in out.getvalue()
    assert sorted(vault_double.keys["community-alpha"].versions) == [2]  # trimmed now
    with schema_context("alpha"):
        assert RotationJob.objects.get(target_version=2).status == "done"
        assert Participant.objects.count() == 4

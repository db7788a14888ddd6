"""The witness: append-only by construction locally, Object Lock on S3, published after commit, retried when down."""

from __future__ import annotations

import io
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from django_tenants.utils import schema_context
from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

from security.audit.checkpoints import checkpoint_create, signing_key_for, statement_document
from security.audit.live import verify_live
from security.audit.models import WitnessReceipt
from security.audit.offline import WitnessedStatement
from security.audit.witness import (
    LocalWitness,
    S3Witness,
    WitnessConflict,
    WitnessUnavailable,
    get_witness,
    witness_key,
    witness_log,
    witness_publish_pending,
)
from tenants.models import Community
from tests.support.audit import recorded

ITEM = WitnessedStatement("checkpoint", '{"log":"alpha","sequence":5}', "ed25519:00", "c2ln")


def test_the_local_witness_creates_each_statement_once_read_only(tmp_path: Path) -> None:
    witness = LocalWitness(tmp_path / "witness")

    witness.publish("alpha", 5, ITEM)
    witness.publish("alpha", 5, ITEM)  # the same statement again: a no-op (a retry after a lost answer)
    path = tmp_path / "witness" / "alpha" / "checkpoint" / f"{5:020d}.json"

    assert path.read_text() == ITEM.line()
    assert oct(path.stat().st_mode & 0o777) == "0o400"
    assert witness.sequences("alpha", "checkpoint") == [5]
    assert witness.read("alpha", "checkpoint", 5) == ITEM
    assert witness.read("alpha", "checkpoint", 6) is None
    assert witness.sequences("beta", "checkpoint") == []


def test_the_local_witness_refuses_to_overwrite_a_statement(tmp_path: Path) -> None:
    witness = LocalWitness(tmp_path)
    witness.publish("alpha", 5, ITEM)
    other = WitnessedStatement("checkpoint", '{"log":"alpha","sequence":5,"x":1}', "ed25519:00", "c2ln")

    with pytest.raises(WitnessConflict):
        witness.publish("alpha", 5, other)
    assert witness.read("alpha", "checkpoint", 5) == ITEM


@pytest.mark.parametrize(("log", "kind", "sequence"), [("../etc", "checkpoint", 1), ("alpha", "x", 1),
                                                       ("alpha/..", "purge", 1), ("alpha", "purge", -1)])  # fmt: skip
def test_witness_keys_cannot_leave_their_folder(log: str, kind: str, sequence: int) -> None:
    with pytest.raises(ValueError, match="witness key"):
        witness_key(log, kind, sequence)


def test_a_witness_directory_that_cannot_be_written_is_unavailable(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")

    with pytest.raises(WitnessUnavailable):
        LocalWitness(blocked).publish("alpha", 1, ITEM)


class FakeObjectLockBucket:
    """put/get/list as S3 answers them for a bucket with Object Lock (If-None-Match honoured)."""

    class exceptions:  # noqa: N801 - boto3's attribute name
        class NoSuchKey(Exception):
            pass

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.puts: list[dict[str, Any]] = []

    def put_object(self, **arguments: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError  # type: ignore[import-untyped]  # noqa: PLC0415

        self.puts.append(arguments)
        if arguments.get("IfNoneMatch") == "*" and arguments["Key"] in self.objects:
            raise ClientError({"Error": {"Code": "PreconditionFailed"}}, "PutObject")
        self.objects[arguments["Key"]] = arguments["Body"]
        return {}

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        if Key not in self.objects:
            raise self.exceptions.NoSuchKey(Key)
        return {"Body": io.BytesIO(self.objects[Key])}

    def get_paginator(self, name: str) -> Any:
        bucket = self

        class Pages:
            def paginate(self, *, Bucket: str, Prefix: str) -> list[dict[str, Any]]:  # noqa: N803
                return [{"Contents": [{"Key": key} for key in sorted(bucket.objects) if key.startswith(Prefix)]}]

        return Pages()


def test_the_s3_witness_locks_each_object_in_compliance_mode_for_the_retention_and_never_overwrites() -> None:
    bucket = FakeObjectLockBucket()
    witness = S3Witness(bucket="witness", prefix="audit-witness/", client=bucket)
    before = timezone.now()

    witness.publish("alpha", 5, ITEM)
    witness.publish("alpha", 5, ITEM)
    (put, again) = bucket.puts

    assert put["Key"] == f"audit-witness/alpha/checkpoint/{5:020d}.json"
    assert put["ObjectLockMode"] == "COMPLIANCE"
    assert put["IfNoneMatch"] == "*"
    assert put["ObjectLockRetainUntilDate"] >= before + timedelta(days=settings.AUDIT_RETENTION_DAYS)
    assert again["Key"] == put["Key"]
    assert list(bucket.objects) == [put["Key"]]
    assert witness.sequences("alpha", "checkpoint") == [5]
    assert witness.read("alpha", "checkpoint", 5) == ITEM
    assert witness.read("alpha", "checkpoint", 6) is None
    with pytest.raises(WitnessConflict):
        witness.publish("alpha", 5, WitnessedStatement("checkpoint", "{}", "ed25519:00", "c2ln"))


def test_the_witness_is_chosen_by_settings(settings: Settings) -> None:
    settings.AUDIT_WITNESS = "local"
    assert isinstance(get_witness(), LocalWitness)
    settings.AUDIT_WITNESS, settings.AUDIT_WITNESS_S3_BUCKET = "s3", "witness"
    assert isinstance(get_witness(), S3Witness)
    settings.AUDIT_WITNESS = "ftp"
    with pytest.raises(Exception, match="AUDIT_WITNESS must be local or s3"):
        get_witness()


def test_a_checkpoint_reaches_the_witness_when_its_transaction_commits(
    alpha: Community, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    with schema_context("alpha"):
        recorded(action="participant.read")
        with django_capture_on_commit_callbacks(execute=True):
            checkpoint = checkpoint_create()
            assert get_witness().sequences("alpha", "checkpoint") == []  # not before the commit
        assert checkpoint is not None

        assert get_witness().sequences("alpha", "checkpoint") == [checkpoint.sequence]
        assert list(WitnessReceipt.objects.values_list("kind", "sequence")) == [("checkpoint", checkpoint.sequence)]
        assert verify_live().verdict("alpha").endswith("witnessed through #1")


def test_a_witness_that_is_down_leaves_the_checkpoint_unwitnessed_then_the_next_run_publishes_it(
    alpha: Community, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with schema_context("alpha"):
        recorded(action="participant.read")
        checkpoint_create()

        def down(self: LocalWitness, log: str, sequence: int, item: WitnessedStatement) -> None:
            raise WitnessUnavailable("OSError")

        with monkeypatch.context() as patched, caplog.at_level(logging.WARNING):
            patched.setattr(LocalWitness, "publish", down)
            assert witness_publish_pending() == 0
        unwitnessed = verify_live()
        recorded(action="participant.read")
        checkpoint_create()
        published = witness_publish_pending()
        witnessed = verify_live()

    assert "did not take checkpoint #1 of alpha (OSError)" in caplog.text
    assert "signature" not in caplog.text
    assert "statement" not in caplog.text
    assert unwitnessed.intact
    assert unwitnessed.notes == ["nothing witnessed yet", "1 checkpoints not witnessed yet (#1)"]
    assert published == 2
    assert witnessed.notes == ["witnessed through #2"]


def test_the_live_verifier_refuses_to_vouch_when_the_witness_cannot_be_read(
    alpha: Community, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(self: LocalWitness, log: str, kind: str) -> list[int]:
        raise WitnessUnavailable("EndpointConnectionError")

    monkeypatch.setattr(LocalWitness, "sequences", down)
    with schema_context("alpha"):
        recorded(action="participant.read")
        result = verify_live()

    assert result.problem == "the witness cannot be read (EndpointConnectionError): the log cannot be vouched for"


def test_audit_witness_writes_the_latest_checkpoint_and_the_purges_as_json_lines(
    alpha: Community, tmp_path: Path
) -> None:
    with schema_context("alpha"):
        for _ in range(3):
            recorded(action="participant.read")
            checkpoint_create()
        witness_publish_pending()
    out = tmp_path / "witness.jsonl"

    call_command("audit_witness", "--community", "alpha", "--out", str(out), stdout=io.StringIO())

    (line,) = out.read_text().splitlines()
    assert WitnessedStatement.from_line(line) == witness_log("alpha")[0]
    assert '\\"sequence\\":3' in line


def test_each_community_signs_with_a_key_of_its_own_and_the_platform_with_the_shared_one() -> None:
    assert signing_key_for("public") == settings.AUDIT_SIGNING_KEY_NAME
    assert signing_key_for("alpha") == f"{settings.AUDIT_SIGNING_KEY_NAME}-alpha"
    assert signing_key_for("lab_one") == f"{settings.AUDIT_SIGNING_KEY_NAME}-lab-one"
    long = signing_key_for("a" * 40)
    assert long.startswith(f"{settings.AUDIT_SIGNING_KEY_NAME}-")
    assert len(long) <= 40
    assert statement_document(log="alpha", sequence=1, hash_="0" * 64, signed_at="t")["community"] == "alpha"


def test_the_community_key_file_holds_its_own_key_and_the_shared_one_but_not_anothers(
    alpha: Community, beta: Community, tmp_path: Path
) -> None:
    for slug in ("alpha", "beta"):
        call_command("audit_keys", "--community", slug, "--out", str(tmp_path / slug), stdout=io.StringIO())
    alpha_names = [line.rsplit(" ", 1)[-1] for line in (tmp_path / "alpha").read_text().splitlines() if "#" in line]
    beta_names = [line.rsplit(" ", 1)[-1] for line in (tmp_path / "beta").read_text().splitlines() if "#" in line]

    assert alpha_names == [signing_key_for("alpha"), settings.AUDIT_SIGNING_KEY_NAME]
    assert beta_names == [signing_key_for("beta"), settings.AUDIT_SIGNING_KEY_NAME]

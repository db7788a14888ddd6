"""An offboarded community's audit trail: the attacker wants it gone with the schema, or replaced on the way out.

Offboarding destroys the community's key and, after the grace period, drops
its schema. Before this suite's fix nothing was kept: the audit log, its
checkpoints and the accounting of disclosures went with the schema, inside
HIPAA's six years. Now the schema goes only once its archive (signed, sealed
under the provider's archive key) opens and verifies; a missing, altered or
re-signed archive keeps the schema where it is.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django_tenants.utils import schema_context, schema_exists

from security.audit.models import AuditEvent
from tests.support.audit import recorded
from tests.support.offboarding import Trail, auditor_keys, community_with_a_trail, standalone, stored_archive
from vault.errors import KeyDestroyed
from vault.models import DataKey, KeyKind
from vault.providers import get_provider


@pytest.fixture
def archive_dir(settings: Any, tmp_path: Path) -> Path:
    """A local archive store of this test's own."""
    settings.AUDIT_ARCHIVE_DIR = tmp_path / "archives"
    settings.OFFBOARD_GRACE_DAYS = 30
    return Path(settings.AUDIT_ARCHIVE_DIR)


@pytest.fixture
def offboarded(db: None, archive_dir: Path) -> Trail:
    """Community gamma, with events, checkpoints and disclosures, offboarded through the command."""
    trail = community_with_a_trail("gamma")
    call_command("offboard_community", "--slug", "gamma", "--confirm", "gamma", stdout=io.StringIO())
    return trail


def purge_after_the_grace_period() -> tuple[str, str]:
    """Run the daily purge 31 days on; its standard output and error (a refusal raises CommandError)."""
    out, err = io.StringIO(), io.StringIO()
    with time_machine.travel(datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(days=31)):
        call_command("purge_offboarded_communities", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def refused_purge() -> str:
    err = io.StringIO()
    with (
        time_machine.travel(datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(days=31)),
        pytest.raises(CommandError, match="kept 1 schema"),
    ):
        call_command("purge_offboarded_communities", stdout=io.StringIO(), stderr=err)
    return err.getvalue()


def test_purging_an_offboarded_community_destroys_its_audit_trail(offboarded: Trail, tmp_path: Path) -> None:
    """HIPAA review: retention 164.316(b)(2); 164.528(d) and 164.530(j) for the accounting."""
    keys = auditor_keys(tmp_path, "gamma")

    out, _ = purge_after_the_grace_period()
    call_command("audit_archive_open", "--community", "gamma", "--to", str(tmp_path / "gamma"), stdout=io.StringIO())
    verified = standalone(
        "security.audit.offline", tmp_path / "gamma/audit.jsonl", tmp_path / "gamma/audit.jsonl.manifest.json", keys
    )
    whole = standalone("security.audit.offline_archive", tmp_path / "gamma", keys)

    assert out.strip() == "dropped 1 schema(s): gamma"
    assert not schema_exists("gamma")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout == f"export audit.jsonl: {offboarded.events} entries intact, 1 signed checkpoints verified\n"
    assert whole.returncode == 0, whole.stderr
    accounting = json.loads((tmp_path / "gamma/disclosures.json").read_text())["participants"]
    listed = accounting[offboarded.participant.pseudonym]
    assert [entry["audit_sequence"] for entry in listed] == [event.sequence for event in offboarded.disclosed]
    assert {entry["recipient"]["email"] for entry in listed} == {offboarded.recipient.email}


def test_a_missing_archive_does_not_let_the_schema_be_dropped(offboarded: Trail) -> None:
    """HIPAA review: retention 164.316(b)(2); an operator (or a script) removes the archive before the purge."""
    path = stored_archive("gamma")
    path.unlink()

    err = refused_purge()

    assert schema_exists("gamma")
    assert "kept the schema of gamma" in err
    assert "holds no archive of gamma" in err


def test_a_tampered_archive_does_not_let_the_schema_be_dropped(offboarded: Trail) -> None:
    """HIPAA review: retention 164.316(b)(2); one flipped byte in the stored archive."""
    path = stored_archive("gamma")
    path.chmod(0o600)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    err = refused_purge()

    assert schema_exists("gamma")
    assert "kept the schema of gamma" in err
    assert "was altered or moved" in err


def test_an_archive_rewritten_without_the_signing_key_does_not_let_the_schema_be_dropped(
    offboarded: Trail, tmp_path: Path
) -> None:
    """HIPAA review: retention 164.316(b)(2); someone who can seal (the archive key) drops disclosures and re-seals."""
    from security.audit.archives import _seal  # noqa: PLC0415 - the module this suite's fix added

    opened = tmp_path / "opened"
    call_command("audit_archive_open", "--community", "gamma", "--to", str(opened), stdout=io.StringIO())
    disclosures = opened / "disclosures.json"
    disclosures.write_text(disclosures.read_text().replace(offboarded.participant.pseudonym, "P-NOBODY"))
    manifest = json.loads((opened / "archive.manifest.json").read_text())
    content = disclosures.read_bytes()  # the listed digest made consistent, but no longer what was signed
    manifest["files"]["disclosures.json"] = {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}
    (opened / "archive.manifest.json").write_text(json.dumps(manifest))
    forged = stored_archive("gamma").with_name("29991231T000000000000Z.tar.sealed")  # the newest: purge checks it
    with io.BytesIO() as plain:
        with tarfile.open(fileobj=plain, mode="w") as tar:
            for path in sorted(opened.iterdir()):
                tar.add(path, arcname=path.name)
        plain.seek(0)
        with forged.open("wb") as sink:
            _seal(plain, sink, community="gamma")

    err = refused_purge()

    assert schema_exists("gamma")
    assert "kept the schema of gamma" in err
    assert "archive manifest's signature does not verify" in err


def test_events_after_the_archive_do_not_vanish_with_the_schema(offboarded: Trail) -> None:
    """HIPAA review: retention 164.316(b)(2); the log grows after the archive (a request in flight at offboarding)."""
    with schema_context("gamma"):
        late = recorded(action="auth.login", outcome="allow", actor_id=str(offboarded.recipient.pk))

    err = refused_purge()

    assert schema_exists("gamma")
    assert f"the schema up to #{late.sequence}" in err
    assert "audit_archive_create --community gamma" in err


def test_the_archive_opens_with_the_community_key_destroyed(offboarded: Trail, tmp_path: Path) -> None:
    """HIPAA review: retention 164.316(b)(2); crypto-shredding must not shred the audit trail with the data."""
    with schema_context("gamma"):
        assert not DataKey.objects.filter(kind=KeyKind.DATA).exists()
    with pytest.raises(KeyDestroyed):
        get_provider().generate_wrapped_key("gamma")

    call_command("audit_archive_open", "--community", "gamma", "--to", str(tmp_path / "gamma"), stdout=io.StringIO())

    assert (
        standalone("security.audit.offline_archive", tmp_path / "gamma", auditor_keys(tmp_path, "gamma")).returncode
        == 0
    )
    with schema_context("gamma"):
        assert AuditEvent.objects.count() == offboarded.events

"""The offline archive verifier: everything in an opened archive checked against the auditor's keys, Django absent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from security.audit.archives import audit_archive_create, audit_archive_open
from security.audit.offline_archive import file_digest, main, verify_archive
from tests.support.offboarding import auditor_keys, community_with_a_trail

ROOT = Path(__file__).resolve().parents[3]
STANDALONE = """
import json, runpy, sys
root, loaded = sys.argv.pop(1), sys.argv.pop(1)
sys.path.insert(0, root)
for name in ("django", "rest_framework", "django_tenants", "psycopg", "redis", "celery", "kombu", "hvac",
             "config", "gateway", "services", "policy", "vault", "tenants"):
    sys.modules[name] = None
try:
    runpy.run_module("security.audit.offline_archive", run_name="__main__", alter_sys=True)
finally:
    with open(loaded, "w") as handle:
        json.dump(sorted(name for name in sys.modules if name.split(".")[0] in ("core", "security")), handle)
"""


@pytest.fixture
def opened(db: None, settings: Any, tmp_path: Path) -> Path:
    """An opened archive of community gamma (three events, two checkpoints, two disclosures)."""
    settings.AUDIT_ARCHIVE_DIR = tmp_path / "archives"
    community_with_a_trail("gamma")
    audit_archive_create(community="gamma")
    audit_archive_open(community="gamma", to=tmp_path / "opened")
    return tmp_path / "opened"


def resign_free_edit(opened: Path, name: str, edit: Any) -> None:
    """Edit a member and list its new digest in the manifest, which then no longer matches its signature."""
    path = opened / name
    path.write_text(edit(path.read_text()))
    manifest = json.loads((opened / "archive.manifest.json").read_text())
    manifest["files"][name] = file_digest(path)
    (opened / "archive.manifest.json").write_text(json.dumps(manifest))


def test_an_intact_archive_verifies_without_django(opened: Path, tmp_path: Path) -> None:
    keys = auditor_keys(tmp_path, "gamma")
    loaded = tmp_path / "loaded.json"

    result = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-I", "-c", STANDALONE, str(ROOT), str(loaded), str(opened), str(keys)],
        cwd=tmp_path,
        env={},
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == "archive gamma: 3 entries intact, 2 signed checkpoints verified\n"
    assert "security.audit.offline" in json.loads(loaded.read_text())


def test_a_member_changed_after_signing_is_caught(opened: Path, tmp_path: Path) -> None:
    (opened / "disclosures.json").write_text("{}")

    result = verify_archive(opened, auditor_keys(tmp_path, "gamma"))

    assert result.problem == "disclosures.json: its SHA-256 or size differs from the archive manifest's"


def test_a_manifest_changed_after_signing_is_caught(opened: Path, tmp_path: Path) -> None:
    resign_free_edit(
        opened, "disclosures.json", lambda text: text.replace('"audit_sequence": 3', '"audit_sequence": 1')
    )

    result = verify_archive(opened, auditor_keys(tmp_path, "gamma"))

    assert result.problem == "the archive manifest's signature does not verify with the given public keys"


def test_keys_other_than_the_auditors_copy_verify_nothing(opened: Path, tmp_path: Path) -> None:
    other = Ed25519PrivateKey.generate().public_key()
    keys = tmp_path / "other.pem"
    keys.write_bytes(other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    assert not verify_archive(opened, keys).intact


def test_a_dropped_event_is_caught_by_the_standard_verifier(opened: Path, tmp_path: Path) -> None:
    lines = (opened / "audit.jsonl").read_text().splitlines(keepends=True)
    (opened / "audit.jsonl").write_text(lines[0] + lines[2])

    result = verify_archive(opened, auditor_keys(tmp_path, "gamma"))

    assert not result.intact
    assert "audit.jsonl: its SHA-256 or size differs" in result.problem


def test_the_command_line_exits_by_verdict(opened: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = auditor_keys(tmp_path, "gamma")

    assert main([str(opened), str(keys)]) == 0
    (opened / "checkpoints.jsonl").write_text("")
    assert main([str(opened), str(keys)]) == 1
    assert "checkpoints.jsonl: its SHA-256 or size differs" in capsys.readouterr().err
    with pytest.raises(SystemExit) as wrong:
        main([str(tmp_path), str(keys)])
    assert wrong.value.code == 2

"""Exports and offline verification: every format verifies, and every kind of tampering is named."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_tenants.utils import schema_context

from security.audit.checkpoints import checkpoint_at
from security.audit.exports import export_to_path
from security.audit.offline import main, verify_files
from security.audit.witness import witness_publish_pending
from tenants.models import Community
from tests.support.audit import recorded

START = datetime(2026, 1, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[3]
# The offline verifier as an auditor runs it (python -m security.audit.offline EXPORT MANIFEST KEYS), in a
# process where Django, orjson, the services it talks to and the rest of the project cannot be imported at all:
# the standard library and cryptography are all it needs.
STANDALONE = """
import json, runpy, sys
root, loaded = sys.argv.pop(1), sys.argv.pop(1)
sys.path.insert(0, root)
for name in ("django", "rest_framework", "django_tenants", "psycopg", "redis", "celery", "kombu", "hvac", "orjson",
             "config", "gateway", "services", "policy", "vault", "tenants"):
    sys.modules[name] = None  # any import of these (or of what is inside them) now fails
try:
    runpy.run_module("security.audit.offline", run_name="__main__", alter_sys=True)
finally:
    with open(loaded, "w") as handle:
        json.dump(sorted(name for name in sys.modules if name.split(".")[0] in ("core", "security")), handle)
"""


def at(minute: int) -> datetime:
    return START + timedelta(minutes=minute)


@pytest.fixture
def log(alpha: Community) -> Iterator[None]:
    """30 events a minute apart (#n at minute n), checkpoints at #10 and #20."""
    with schema_context("alpha"):
        for n in range(1, 31):
            recorded(
                occurred_at=at(n),
                actor_id=f"u-{n}",
                actor_roles=["coordinator"],
                action="participant.read",
                resource_type="participant",
                resource_id=f"p-{n:03d}",
                participant_pseudonyms=[f"P-{n:010d}"],
                purpose="research_use",
                outcome="allow" if n % 7 else "deny",
                decision_id=f"d-{n}",
                reasons=["role_grants_action"],
                user_agent='=HYPERLINK("x")' if n == 12 else "curl/8",
                client_ip="192.0.2.1",
                http_status=200,
            )
            if n in (10, 20):
                checkpoint_at(n)
        yield


@pytest.fixture
def keys(tmp_path: Path, log: None) -> Path:
    path = tmp_path / "audit-keys.pem"
    call_command("audit_keys", "--community", "alpha", "--out", str(path), stdout=io.StringIO())
    return path


def export(tmp_path: Path, kind: str, since: int, until: int) -> Path:
    path = tmp_path / f"alpha.{kind}"
    with schema_context("alpha"):
        export_to_path(path, kind=kind, since=at(since), until=at(until))
    return path


def verify(path: Path, keys: Path) -> tuple[int | None, str]:
    result = verify_files(path, Path(f"{path}.manifest.json"), keys)
    return result.first_bad_sequence, result.problem


def entry_lines(kind: str, lines: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Split a file into head, entry lines, tail."""
    if kind == "csv":
        return lines[:1], lines[1:], []
    if kind == "fhir":
        return lines[:1], lines[1:-1], lines[-1:]
    return [], lines, []


def rewrite(path: Path, kind: str, change: Callable[[list[str]], list[str]]) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    head, entries, tail = entry_lines(kind, lines)
    changed = change(entries)
    if kind == "fhir":  # keep the Bundle well-formed: commas between entries only
        changed = [("," if index else "") + line.lstrip(",") for index, line in enumerate(changed)]
    path.write_text("".join(head + changed + tail), encoding="utf-8")


def swap(entries: list[str], i: int) -> list[str]:
    entries[i], entries[i + 1] = entries[i + 1], entries[i]
    return entries


# The range [minute 5, minute 25) is #5..#24: the file's line i is #(5 + i).
TAMPERING: dict[str, tuple[Callable[[list[str]], list[str]], int]] = {
    "edit a field": (lambda e: [line.replace("p-008", "p-080") for line in e], 8),
    "delete a row": (lambda e: e[:3] + e[4:], 8),
    "insert a row": (lambda e: [*e[:4], e[3], *e[4:]], 9),
    "swap two rows": (lambda e: swap(e, 3), 8),
    "truncate the tail": (lambda e: e[:-3], 22),
}
FORMATS = ["jsonl", "csv", "fhir"]


@pytest.mark.parametrize("kind", FORMATS)
def test_an_untouched_export_verifies_offline(kind: str, tmp_path: Path, keys: Path) -> None:
    path = export(tmp_path, kind, 5, 25)
    manifest = json.loads(Path(f"{path}.manifest.json").read_text())

    assert verify(path, keys) == (None, "")
    assert (manifest["count"], manifest["first_sequence"], manifest["last_sequence"]) == (20, 5, 24)
    assert manifest["start"]["before"]["sequence"] == 4
    assert manifest["end"]["after"]["sequence"] == 25
    assert json.loads(manifest["end"]["checkpoint"]["statement"])["sequence"] == 30  # signed for the export
    out = io.StringIO()
    call_command("audit_verify", "--export", str(path), "--public-key", str(keys), stdout=out)
    assert "20 entries intact" in out.getvalue()


@pytest.mark.parametrize("kind", FORMATS)
@pytest.mark.parametrize(("change", "first_bad"), TAMPERING.values(), ids=TAMPERING.keys())
def test_tampering_with_an_export_is_caught_and_named(
    kind: str, change: Callable[[list[str]], list[str]], first_bad: int, tmp_path: Path, keys: Path
) -> None:
    path = export(tmp_path, kind, 5, 25)

    rewrite(path, kind, change)

    bad, problem = verify(path, keys)
    assert bad == first_bad, problem
    with pytest.raises(CommandError, match=f"broken at #{first_bad}"):
        call_command("audit_verify", "--export", str(path), "--public-key", str(keys), stdout=io.StringIO())


def test_an_edited_manifest_fails_its_signature(tmp_path: Path, keys: Path) -> None:
    path = export(tmp_path, "jsonl", 5, 25)
    manifest_path = Path(f"{path}.manifest.json")
    manifest = json.loads(manifest_path.read_text())
    manifest["count"], manifest["last_sequence"] = 17, 21
    manifest_path.write_text(json.dumps(manifest))
    rewrite(path, "jsonl", lambda e: e[:-3])

    assert verify(path, keys) == (None, "the manifest's signature does not verify with the given public keys")


def test_a_public_key_that_is_not_ours_verifies_nothing(tmp_path: Path, keys: Path) -> None:
    path = export(tmp_path, "jsonl", 5, 25)
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    assert "signature does not verify" in verify(path, stranger)[1]


def test_whitespace_changes_are_caught_by_the_file_digest(tmp_path: Path, keys: Path) -> None:
    path = export(tmp_path, "jsonl", 5, 25)
    path.write_text(path.read_text() + "\n")

    assert verify(path, keys) == (None, "the file's SHA-256 differs from the manifest's")


@pytest.mark.parametrize(("since", "until", "count"), [(0, 8, 7), (26, 40, 5), (100, 200, 0), (8, 9, 1)])
def test_ranges_at_the_edges_verify(since: int, until: int, count: int, tmp_path: Path, keys: Path) -> None:
    """From the first entry (genesis), to the head (no entry after), empty, and a single entry."""
    path = export(tmp_path, "jsonl", since, until)

    assert verify(path, keys) == (None, "")
    assert json.loads(Path(f"{path}.manifest.json").read_text())["count"] == count


def test_the_end_of_the_log_cannot_be_cut_from_an_export_that_reaches_it(tmp_path: Path, keys: Path) -> None:
    path = export(tmp_path, "csv", 20, 40)
    rewrite(path, "csv", lambda e: e[:-1])

    assert verify(path, keys)[0] == 30


def test_formula_looking_values_are_escaped_in_csv_and_still_verify(tmp_path: Path, keys: Path) -> None:
    path = export(tmp_path, "csv", 5, 25)

    assert "'=HYPERLINK" in path.read_text()
    assert verify(path, keys) == (None, "")


def test_the_fhir_export_is_a_bundle_of_audit_events(tmp_path: Path, keys: Path) -> None:
    bundle = json.loads(export(tmp_path, "fhir", 5, 25).read_text())

    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "collection")
    resources = [entry["resource"] for entry in bundle["entry"]]
    assert {resource["resourceType"] for resource in resources} == {"AuditEvent"}
    first = resources[0]
    assert first["recorded"] == "2026-01-01T00:05:00.000000Z"
    assert first["agent"][0]["who"]["identifier"]["value"] == "u-5"
    assert first["entity"][1]["what"]["identifier"]["value"] == "P-0000000005"
    assert [r["outcome"] for r in resources if r["id"] in ("alpha-7", "alpha-8")] == ["4", "0"]


def test_editing_the_readable_part_of_a_fhir_event_is_caught(tmp_path: Path, keys: Path) -> None:
    path = export(tmp_path, "fhir", 5, 25)
    rewrite(path, "fhir", lambda e: [line.replace('"value":"u-9"', '"value":"u-99"') for line in e])

    assert verify(path, keys)[0] == 9


def test_the_command_writes_the_file_and_manifest_and_refuses_the_future(tmp_path: Path, keys: Path) -> None:
    out = tmp_path / "h1.jsonl"
    stdout = io.StringIO()

    call_command(
        "audit_export", "--community", "alpha", "--since", "2026-01-01T00:05:00Z", "--until",
        "2026-01-01T00:25:00Z", "--format", "jsonl", "--out", str(out), stdout=stdout,
    )  # fmt: skip

    assert "wrote 20 events (#5..#24)" in stdout.getvalue()
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert verify(out, keys) == (None, "")
    future = (timezone.now() + timedelta(days=1)).isoformat()
    with pytest.raises(CommandError, match="not in the future"):
        call_command("audit_export", "--community", "alpha", "--since", "2026-01-01T00:00:00Z", "--until", future,
                     "--out", str(tmp_path / "x.jsonl"))  # fmt: skip


def test_offline_verification_needs_no_database(tmp_path: Path, keys: Path) -> None:
    path = export(tmp_path, "jsonl", 5, 25)
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.development",
        "DATABASE_URL": "postgres://nobody@127.0.0.1:9/nowhere",
        "REDIS_URL": "redis://127.0.0.1:9/0",
        "CACHE_URL": "redis://127.0.0.1:9/1",
        "RABBITMQ_URL": "amqp://127.0.0.1:9//",
    }
    command = [sys.executable, "manage.py", "audit_verify", "--export", str(path), "--public-key", str(keys)]

    intact = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)  # noqa: S603
    rewrite(path, "jsonl", lambda e: e[:3] + e[4:])
    broken = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)  # noqa: S603

    assert intact.returncode == 0, intact.stderr
    assert "20 entries intact" in intact.stdout
    assert broken.returncode != 0
    assert "broken at #8" in broken.stderr


def run_standalone(
    tmp_path: Path, path: Path, keys: Path, *witness: Path
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    loaded = tmp_path / "loaded.json"
    command = [sys.executable, "-I", "-c", STANDALONE, str(ROOT), str(loaded)]
    command += [str(path), f"{path}.manifest.json", str(keys), *map(str, witness)]
    environment = {"PATH": os.environ.get("PATH", "")}  # no DJANGO_SETTINGS_MODULE, no service addresses
    result = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        command, cwd=tmp_path, env=environment, capture_output=True, text=True, check=False
    )
    return result, json.loads(loaded.read_text())


def test_the_offline_verifier_runs_without_django_and_gives_the_same_verdict(tmp_path: Path, keys: Path) -> None:
    path = export(tmp_path, "csv", 5, 25)
    manifest = Path(f"{path}.manifest.json")

    intact, loaded = run_standalone(tmp_path, path, keys)
    intact_in_process = verify_files(path, manifest, keys)
    rewrite(path, "csv", lambda e: e[:3] + e[4:])
    broken, _ = run_standalone(tmp_path, path, keys)

    assert intact.returncode == 0, intact.stderr
    assert intact.stdout == "export alpha.csv: 20 entries intact, 1 signed checkpoints verified\n"
    assert intact.stdout == intact_in_process.verdict("export alpha.csv") + "\n"
    assert loaded == [
        "core",
        "core.canonical",
        "security",
        "security.audit",
        "security.audit.formats",
        "security.audit.hashing",
    ]
    assert broken.returncode == 1
    assert broken.stderr == verify_files(path, manifest, keys).verdict("export alpha.csv") + "\n"
    assert "broken at #8" in broken.stderr


def test_the_standalone_verifier_takes_the_witness_file_as_a_fourth_argument(tmp_path: Path, keys: Path) -> None:
    with schema_context("alpha"):
        witness_publish_pending()  # the checkpoints at #10 and #20, as their commits would have published them
    witness = tmp_path / "witness.jsonl"
    call_command("audit_witness", "--community", "alpha", "--out", str(witness), stdout=io.StringIO())
    path = export(tmp_path, "jsonl", 5, 25)

    result, loaded = run_standalone(tmp_path, path, keys, witness)

    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "export alpha.jsonl: 20 entries intact, 1 signed checkpoints verified; witnessed through #20\n"
    )
    assert "django" not in loaded
    assert all(name.split(".")[0] in {"core", "security"} for name in loaded)
    assert "security.audit.witness" not in loaded


def test_the_auditors_command_line_exits_by_verdict(
    tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = export(tmp_path, "jsonl", 5, 25)
    manifest = f"{path}.manifest.json"

    assert main([str(path), manifest, str(keys)]) == 0
    assert "20 entries intact" in capsys.readouterr().out
    Path(manifest).write_text("[]")
    assert main([str(path), manifest, str(keys)]) == 1
    assert "cannot be checked: a manifest is a JSON object" in capsys.readouterr().err
    with pytest.raises(SystemExit) as wrong:
        main([str(path), str(tmp_path / "missing.json"), str(keys)])
    assert wrong.value.code == 2
    assert "missing.json is not a file" in capsys.readouterr().err

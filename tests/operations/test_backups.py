"""``make backup`` and ``make restore-test`` for real: pg_basebackup, WAL from a slot, a scratch cluster.

A database of the module's own is migrated and seeded with the demo communities (alpha and beta) by the
commands themselves, backed up, then beta is offboarded (its keys destroyed). The restore test must pass;
with its point-in-time target or the key destruction taken away, it must fail, naming the check.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import conninfo

from operations.backups import restore
from operations.backups.base import drop_slot
from tests.deploy.conftest import SUFFIX, image_environment
from tests.support.broker import fresh_vhost
from tests.support.databases import drop_database, fresh_database

ROOT = Path(__file__).resolve().parents[2]


SEED_PARTICIPANTS = """
import uuid
from django_tenants.utils import schema_context
from tests.factories import AccountingRequestFactory, ConsentFactory, ObservationFactory, ParticipantFactory
from tests.factories import StudyTeamMemberFactory
for slug in ("alpha", "beta"):
    with schema_context(slug):
        participants = ParticipantFactory.create_batch(3)
        ConsentFactory(participant=participants[0])
        ObservationFactory(participant=participants[1])
        AccountingRequestFactory(participant=participants[2])
        StudyTeamMemberFactory(study=participants[0].study, user_id=uuid.uuid4())
"""

# What a community restored as ``copy`` from ``alpha`` holds, as JSON (run in the platform after the restore).
COMPARE_RESTORED = """
import json
import uuid
from django_tenants.utils import schema_context
from django.db import connection
from security.audit.live import verify_live
from security.audit.models import AuditEvent
from services.studies.models import StudyTeamMember
from services.observations.models import Observation
from services.participants.models import Participant
from tests.factories import StudyTeamMemberFactory
from vault.fields import blind_index_filter

def opened(slug):
    with schema_context(slug):
        people = {str(p.pk): [p.given_name, p.family_name, str(p.date_of_birth), p.mrn, p.email, p.consent_scopes,
                              p.pseudonym] for p in Participant.objects.all()}
        notes = {str(o.pk): [o.display, o.note, str(o.effective_date)] for o in Observation.objects.all()}
        with connection.cursor() as cursor:
            cursor.execute("SELECT mrn FROM participants_participant ORDER BY id")
            tokens = [row[0] for row in cursor.fetchall()]
        return {"people": people, "notes": notes, "tokens": tokens}

source, copy = opened("alpha"), opened("copy")
with schema_context("copy"):
    someone = Participant.objects.order_by("pk").first()
    found = Participant.objects.filter(blind_index_filter(Participant, "mrn_index", someone.mrn)).count()
    highest = max(StudyTeamMember.objects.values_list("pk", flat=True))
    added = StudyTeamMemberFactory(user_id=uuid.uuid4()).pk
    chain = verify_live()
    first = AuditEvent.objects.order_by("sequence").values("action", "reasons").first()
print(json.dumps({"same": source["people"] == copy["people"] and source["notes"] == copy["notes"],
                  "people": len(copy["people"]), "shared_tokens": len(set(source["tokens"]) & set(copy["tokens"])),
                  "found": found, "added_after": added > highest, "chain": chain.intact, "first": first}))
"""


class Platform:
    """The module's platform: its environment, and ``manage.py`` in it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.backup = ""  # what ``manage.py backup`` printed

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """This interpreter with ``args`` in the platform's environment, from the repository's root."""
        return subprocess.run(  # noqa: S603  # nosec B603 - the repository's own manage.py or code of this module
            [sys.executable, *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=500, check=False
        )

    def python(self, code: str) -> subprocess.CompletedProcess[str]:
        """``code`` run after ``django.setup()``."""
        return self.run("-c", "import django; django.setup()\n" + code)

    def ok(self, *args: str) -> str:
        result = self.run("manage.py", *args)
        assert result.returncode == 0, f"manage.py {' '.join(args)}: {result.stdout[-2000:]}{result.stderr[-3000:]}"
        return result.stdout

    def slot_dropped(self) -> None:
        url = self.env["DATABASE_URL"]
        name = f"backup_{conninfo.conninfo_to_dict(url)['dbname']}"
        with psycopg.connect(url, autocommit=True) as connection:
            drop_slot(connection, name)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Migrated, seeded, backed up, and beta offboarded after the backup."""
    home, state = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("state")
    url = fresh_database("_backups")
    env = image_environment(home=home, state_dir=state, database_url=url, rabbitmq_url=fresh_vhost(SUFFIX))
    (state / "prometheus").mkdir()
    platform = Platform(env)
    try:
        platform.ok("migrate", "--noinput")
        platform.ok("seed_demo")
        seeded = platform.python(SEED_PARTICIPANTS)
        assert seeded.returncode == 0, seeded.stderr[-3000:]
        platform.backup = platform.ok("backup")
        platform.ok("offboard_community", "--slug", "beta", "--confirm", "beta", "--operator", "backup-test")
        yield platform
    finally:
        platform.slot_dropped()
        drop_database(url)


def test_the_latest_backup_restores_and_proves_itself(platform: Platform) -> None:
    assert "logical backup of alpha: community/alpha/" in platform.backup
    assert "restore point gateway-backup-" in platform.backup
    sealed = list((Path(platform.env["LOCAL_STATE_DIR"]) / "backups").rglob("*.sealed"))
    assert any("base.tar" in path.name for path in sealed)
    assert any("/wal/" in str(path) for path in sealed)
    assert not any(b"PGDATA" in path.read_bytes()[:4096] for path in sealed)  # sealed, not a plain tar
    report = platform.ok("restore_test")
    checks = ("row counts:", "audit chain of public", "audit chain of alpha", "PHI of alpha",
              "of offboarded beta opens", "of the offboarded canary", "point in time: the write before",
              "logical backup of alpha", "logical backup of beta", "alpha restores as a new community")  # fmt: skip
    for check in checks:
        assert any(line.startswith("ok") and check in line for line in report.splitlines()), report
    assert "FAIL" not in report
    kept = Path(next(line for line in report.splitlines() if line.startswith("report kept in ")).split(" in ", 1)[1])
    assert kept.parent == Path(platform.env["LOCAL_STATE_DIR"]) / "restore-test-reports"
    assert kept.name.endswith("-passed.txt")
    assert "restore test passed" in kept.read_text()
    phi = next(line for line in report.splitlines() if "PHI of alpha" in line)
    assert int(phi.split(": ")[1].split()[0]) >= 3, phi  # the sample of alpha's participants opened
    alone = next(line for line in report.splitlines() if "logical backup of alpha" in line)
    assert "sealed values open" in alone
    assert "nothing opens (offboarded)" in next(
        line for line in report.splitlines() if "logical backup of beta" in line
    )


def _run_in_process(platform: Platform, patch: Any) -> str:
    """The restore test in a child process with one mechanism replaced (``patch``: code run first)."""
    result = platform.python(
        f"{patch}\nfrom django.core.management import call_command\ncall_command('restore_test')\n"
    )
    assert result.returncode != 0, result.stdout
    return result.stdout + result.stderr


def test_without_the_recovery_target_the_point_in_time_check_fails(platform: Platform) -> None:
    patch = (
        "from operations.backups import restore\n"
        "restore.Target.settings = lambda self: [\"recovery_target_action = 'promote'\"]\n"
    )
    output = _run_in_process(platform, patch)
    assert "FAIL  point in time: the restore holds" in output


def test_without_key_destruction_the_crypto_shredding_check_fails(platform: Platform) -> None:
    patch = "from unittest import mock\nmock.patch('tenants.lifecycle.community_keys_destroy').start()\n"
    output = _run_in_process(platform, patch)
    assert "FAIL  crypto-shredding:" in output
    assert "of the offboarded canary" in output
    assert "open from the backup" in output


def _restore_as(platform: Platform, source: str, slug: str) -> subprocess.CompletedProcess[str]:
    domain = f"{slug.replace('_', '-')}.localhost"
    return platform.run("manage.py", "restore_community", "--source", source, "--slug", slug, "--name",
                        f"{source} restored", "--domain", domain, "--operator", "backup-test")  # fmt: skip


def test_a_community_restores_as_a_new_one_sealed_for_it(platform: Platform) -> None:
    restored = _restore_as(platform, "alpha", "copy")
    assert restored.returncode == 0, restored.stderr[-3000:]
    assert "participants_participant: 3 rows" in restored.stdout
    assert "It has no members" in restored.stdout
    compared = platform.python(COMPARE_RESTORED)
    assert compared.returncode == 0, compared.stderr[-3000:]
    found = json.loads(compared.stdout.strip().splitlines()[-1])
    assert found["people"] == 3
    assert found["same"]  # every value opens in the copy as it did in alpha
    assert found["shared_tokens"] == 0  # sealed anew under the copy's key, not copied
    assert found["found"] == 1  # the blind index answers with the copy's index key
    assert found["added_after"]  # new rows take ids after the restored ones (a colliding id would raise)
    assert found["chain"]
    assert found["first"]["action"] == "community.restore"
    assert "source:alpha" in found["first"]["reasons"]
    assert any(reason.startswith("source-chain-head:") for reason in found["first"]["reasons"])
    again = _restore_as(platform, "alpha", "copy")
    assert again.returncode != 0
    assert "already exists" in again.stderr  # never over a community


def test_a_backup_restores_only_under_its_own_community(platform: Platform) -> None:
    beta = next(line.split(": ")[1].split(",")[0] for line in platform.backup.splitlines() if "of beta:" in line)
    for folder in (beta, "../community/beta", "community/alpha/../beta"):
        result = platform.run("manage.py", "restore_community", "--source", "alpha", "--slug", "mislabelled",
                              "--name", "M", "--domain", "mislabelled.localhost", "--backup", folder)  # fmt: skip
        assert result.returncode != 0
        assert "is not a logical backup of 'alpha'" in result.stderr, result.stderr[-2000:]
    assert "mislabelled" not in platform.ok("list_communities")


def test_an_offboarded_community_restores_as_nothing(platform: Platform) -> None:
    refused = _restore_as(platform, "beta", "beta_again")
    assert refused.returncode != 0
    assert "beta's key is gone" in refused.stderr
    assert "beta_again" not in platform.ok("list_communities")


def test_a_failed_restore_leaves_no_community_and_no_key(platform: Platform) -> None:
    patch = (
        "from django.db import DatabaseError\n"
        "from operations.backups import rehome\n"
        "def fail(*args, **kwargs): raise DatabaseError('disk full')\n"
        "rehome._reset_sequences = fail\n"
        "from django.core.management import call_command\n"
        "try:\n"
        "    call_command('restore_community', source='alpha', slug='broken', name='B', domain='broken.localhost')\n"
        "except Exception as error:\n"
        "    print('refused:', error)\n"
        "from django_tenants.utils import schema_exists\n"
        "from tenants.models import Community\n"
        "from vault.errors import KeyDestroyed\n"
        "from vault.providers import get_provider\n"
        "try:\n"
        "    get_provider().generate_wrapped_key('broken')\n"
        "    print('key kept')\n"
        "except KeyDestroyed:\n"
        "    print('no key')\n"
        "left = Community.objects.filter(slug='broken').exists() or schema_exists('broken')\n"
        "print('community' if left else 'none')\n"
    )
    result = platform.python(patch)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "refused: the restore into broken failed: disk full" in result.stdout
    assert result.stdout.strip().splitlines()[-2:] == ["no key", "none"]


def test_a_recovery_target_may_not_smuggle_settings() -> None:
    with pytest.raises(ValueError, match="quotes"):
        restore.Target(time="2026-01-01' ; archive_command = 'x").settings()

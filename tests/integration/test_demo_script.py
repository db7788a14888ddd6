"""``scripts/demo.sh``, the researchers' walkthrough, runs against what ``make run`` seeds and every step holds.

The app is served over HTTP on 127.0.0.1 (Django's threaded WSGI server, the
test database, real commits), ``seed_demo`` creates the demo users as
``make run`` does, and the script runs as a subprocess with curl. Threads
stand in for the Celery worker: the export and audit tasks the requests queue
run there, through the tasks' own checks, instead of going to the broker.
Everything the walkthrough wrote is removed afterwards.
"""

from __future__ import annotations

import io
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.db import connections
from django_tenants.utils import schema_context
from pytest_django import Settings

from security.audit.live import verify_live
from security.audit.tasks import chain_schema, checkpoint_schema
from security.models import User
from security.roles import Role
from services.exports.tasks import deidentified_export_task
from tests.support.commits import AUDIT_TABLES, empty_community_tables

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "demo.sh"
DEMO_EMAILS = [f"{role}@{slug}.example" for slug in ("alpha", "beta") for role in Role.values]


class QuietRequestHandler(WSGIRequestHandler):
    """No access log on the test's output."""

    def log_message(self, format: str, *args: Any) -> None:
        """Say nothing."""


def clear_alpha_and_demo_users() -> None:
    empty_community_tables("alpha")
    # seed_demo's memberships and users are on record in beta's log and the platform's: committed too.
    empty_community_tables("beta", AUDIT_TABLES)
    empty_community_tables("public", AUDIT_TABLES)
    User.objects.filter(email__in=DEMO_EMAILS).delete()


Job = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


def worker(jobs: queue.Queue[Job | None]) -> None:
    """Run queued tasks one after the other, as a Celery worker would (a task runs its own checks)."""
    try:
        while (job := jobs.get()) is not None:
            task, args, kwargs = job
            task(*args, **kwargs)
    finally:
        connections.close_all()


def queue_on(jobs: queue.Queue[Job | None], task: Any) -> Callable[..., None]:
    """A stand-in for ``task.apply_async``: the message goes to ``jobs`` instead of the broker."""

    def apply_async(args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None, **_: Any) -> None:
        jobs.put((task, tuple(args), dict(kwargs or {})))

    return apply_async


@pytest.fixture
def served(
    django_db_setup: None, django_db_blocker: Any, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Path]]:
    """The app on http://127.0.0.1:<port> with the demo seeded; yields the base URL and the state directory."""
    settings.DEMO_SEED_ALLOWED = True
    settings.LOCAL_STATE_DIR = tmp_path / "state"
    settings.DEIDENTIFIED_EXPORT_STORAGE = "local"
    settings.DEIDENTIFIED_EXPORT_DIR = tmp_path / "exports"
    # The demo study has one consented participant: with k = 1 the file shows a record (small cells have their
    # own tests, tests/services/exports/test_cells.py); the environment cannot set k below 2.
    settings.DEIDENTIFIED_EXPORT_MIN_CELL = 1
    # Two workers, as `make run`'s Celery worker has several threads: exports, and the audit queue.
    exports: queue.Queue[Job | None] = queue.Queue()
    audit: queue.Queue[Job | None] = queue.Queue()
    monkeypatch.setattr(deidentified_export_task, "apply_async", queue_on(exports, deidentified_export_task))
    monkeypatch.setattr(chain_schema, "apply_async", queue_on(audit, chain_schema))
    monkeypatch.setattr(checkpoint_schema, "apply_async", queue_on(audit, checkpoint_schema))
    with django_db_blocker.unblock():
        clear_alpha_and_demo_users()  # a run that died before its clean-up left rows behind
        server = ThreadedWSGIServer(("127.0.0.1", 0), QuietRequestHandler, allow_reuse_address=False)
        server.set_app(WSGIHandler())
        threads = [
            threading.Thread(target=server.serve_forever, daemon=True),
            *(threading.Thread(target=worker, args=(jobs,), daemon=True) for jobs in (exports, audit)),
        ]
        for thread in threads:
            thread.start()
        try:
            base_url = f"http://127.0.0.1:{server.server_port}"
            call_command("seed_demo", "--base-url", base_url, stdout=io.StringIO())
            yield base_url, settings.LOCAL_STATE_DIR
        finally:
            server.shutdown()
            server.server_close()
            for jobs in (exports, audit):
                jobs.put(None)
            for thread in threads[1:]:
                thread.join(timeout=30)
            clear_alpha_and_demo_users()


def run_demo(base_url: str, state: Path) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "BASE_URL": base_url,
        "LOCAL_STATE_DIR": str(state),
        "EXPORT_TIMEOUT": "30",
    }
    return subprocess.run(  # noqa: S603 - our own script, fixed arguments
        ["bash", str(SCRIPT)],  # noqa: S607 - bash from PATH, as a user runs it
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_walkthrough_runs_against_the_demo_seed_and_every_step_holds(served: tuple[str, Path]) -> None:
    base_url, state = served

    result = run_demo(base_url, state)

    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout
    assert "demo finished: 20 steps, every answer as expected" in output
    assert "POST /studies/ -> 201" in output
    assert "given_name: Ada, mrn: MRN-" in output, "the investigator reads the PHI under consent"
    assert "given_name: null, mrn: null" in output, "the researcher's read has its PHI redacted"
    assert "code: filter_not_allowed" in output
    assert "code: consent_not_covering_purpose" in output, "withdrawal is honoured at once"
    assert 'amr: ["pwd", "otp", "mfa"]' in output
    assert "participants 1, observations 1" in output, "the withdrawn participant is left out of the export"
    assert "code: determination_required" in output, "the file waits for the officer's determination"
    assert "records suppressed: 0" in output
    dataset = output.split("The download matches the manifest's SHA-256")[1].split("==>")[0]
    assert "research_id,sex,birth_year,age,state,zip3" in dataset
    assert ",90+,VT,000," in dataset, "born in 1930: 90+ and no birth year; ZIP 05501 is the IRS's, no residents: 000"
    assert not {"Grace", "Hopper", "05501", "felt fine"} & set(dataset.replace(",", " ").split()), dataset
    assert "disclosures of P-" in output
    with schema_context("alpha"):
        assert verify_live().intact, "the walkthrough's audit events form an intact chain"


def test_a_second_run_signs_in_with_the_second_factor_the_first_one_enrolled(served: tuple[str, Path]) -> None:
    base_url, state = served
    assert run_demo(base_url, state).returncode == 0

    again = run_demo(base_url, state)

    assert again.returncode == 0, again.stdout + again.stderr
    assert "signed in with the second factor enrolled by an earlier run" in again.stdout


def test_an_unexpected_answer_stops_the_script_with_a_non_zero_status(served: tuple[str, Path]) -> None:
    base_url, state = served
    (state / "demo-password").write_text("not-the-password\n", encoding="utf-8")

    result = run_demo(base_url, state)

    assert result.returncode != 0
    assert "POST /auth/token answered 401, expected 200" in result.stderr

"""Every role of ``deploy/bin/entrypoint`` run as a real process against PostgreSQL, Redis and RabbitMQ (issue 17).

``migrate`` on a fresh database (and again, changing nothing), ``api`` (gunicorn with the committed
configuration) answering its probes and stopping gracefully, ``probe`` itself, ``worker`` killing a runaway task
into its dead-letter queue and serving on, and ``beat`` writing its schedule and stopping. The processes, their
environment and the clean-up are in tests/deploy/conftest.py.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from kombu import Connection, Queue

from config.celery import app
from tests.deploy import runaway_tasks
from tests.deploy.conftest import ROOT, Stack, wait_for
from tests.support.served import free_port

RUNAWAY_SECONDS = 30.0  # far beyond the worker's hard limit below: only the limit ends it
SOFT_LIMIT, HARD_LIMIT = 1, 2
GRACEFUL_SECONDS = 10


def get(port: int, path: str, host: str = "localhost") -> tuple[int, dict[str, Any]]:
    """GET ``path`` from the server on ``port``: the status and the JSON body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        body: dict[str, Any] = json.loads(response.read())
        return response.status, body
    finally:
        connection.close()


def refuses_connections(port: int) -> bool:
    """Whether a new TCP connection to ``port`` is refused."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_migrate_applies_every_migration_and_a_second_run_applies_none(stack: Stack) -> None:
    # Given the fresh database the fixture migrated with `entrypoint migrate` (then seeded alpha and beta).
    assert stack.first_migrate.returncode == 0
    assert "Applying" in stack.first_migrate.stdout
    plan = stack.manage("showmigrations", "--plan")
    assert plan.returncode == 0, plan.stderr
    assert "[X]" in plan.stdout
    assert "[ ]" not in plan.stdout

    # When it runs again, every schema (the public one and each community's) has nothing left to apply:
    # the public schema is asked, the communities are decided from their django_migrations rows (tenants/migrating.py).
    second = stack.run("migrate")

    assert second.returncode == 0, second.stdout + second.stderr
    assert "Applying" not in second.stdout
    with psycopg.connect(stack.env["DATABASE_URL"]) as database:
        communities = database.execute("SELECT count(*) FROM tenants_community").fetchone()
    assert communities == (2,)
    assert second.stdout.count("No migrations to apply.") == 1
    assert "communities: 2, at the latest state: 2, to migrate: 0" in second.stdout


def test_the_probe_passes_against_the_api_and_fails_on_a_closed_port(stack: Stack, api: int) -> None:
    # The compose file's hosts allow localhost but not 127.0.0.1, the address the probe connects to.
    for path in ("/health/live", "/health/ready"):
        result = stack.run("probe", env={"PROBE_URL": f"http://127.0.0.1:{api}{path}"})
        assert result.returncode == 0, result.stderr

    closed = stack.run("probe", env={"PROBE_URL": f"http://127.0.0.1:{free_port()}/health/live"})

    assert closed.returncode == 1


def test_the_api_is_ready_with_every_backing_service_up(api: int, stack: Stack) -> None:
    status, body = get(api, "/health/ready")

    assert status == 200
    assert body["release"] == "entrypoint-test"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        name: "up" for name in settings.READINESS_CHECKS
    }
    # No control socket: its default path is shared by every gunicorn of one user (config/gunicorn.py).
    assert not (Path(stack.env["HOME"]) / ".gunicorn").exists()


def test_sigterm_lets_the_request_in_flight_finish_and_refuses_new_connections(stack: Stack) -> None:
    # Given a sign-in whose body is still arriving: the view is reading it when the master is told to stop.
    server, port = stack.start_api("api-graceful", GUNICORN_GRACEFUL_TIMEOUT=str(GRACEFUL_SECONDS))
    password = (stack.state_dir / "demo-password").read_text().strip()
    body = json.dumps({"email": "owner@alpha.example", "password": password}).encode()
    head = (
        "POST /api/v1/auth/token HTTP/1.1\r\nHost: alpha.localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    client = socket.create_connection(("127.0.0.1", port), timeout=30)
    client.sendall(head + body[:10])
    time.sleep(0.5)

    # When the master gets SIGTERM.
    told = time.monotonic()
    server.popen.send_signal(signal.SIGTERM)

    # Then no new connection is taken while the one in flight is still being served...
    wait_for(lambda: refuses_connections(port), seconds=5, what="new connections refused", log=server.log)
    client.sendall(body[10:])
    response = http.client.HTTPResponse(client)
    response.begin()
    answer = json.loads(response.read())
    client.close()
    assert response.status == 200
    assert answer["access"]
    # ...and the master exits 0 once it is done, within the graceful timeout (no worker was cut off).
    assert server.popen.wait(timeout=GRACEFUL_SECONDS + 5) == 0
    assert time.monotonic() - told < GRACEFUL_SECONDS
    assert "Worker graceful timeout" not in server.output()


def task_queue(name: str) -> Queue:
    """The task queue ``name`` as the settings declare it."""
    queue: Queue = next(queue for queue in settings.CELERY_TASK_QUEUES if queue.name == name)
    return queue


def arguments(queue: Queue) -> dict[str, Any]:
    """The ``x-`` arguments ``queue`` is declared with."""
    return dict(queue.queue_arguments or {})


def dead_letter_queue_of(queue: Queue) -> Queue:
    """The queue that ``queue``'s dead letters go to: bound to its dead-letter exchange with its routing key."""
    exchange, routing_key = arguments(queue)["x-dead-letter-exchange"], arguments(queue)["x-dead-letter-routing-key"]
    found: Queue = next(
        candidate
        for candidate in settings.CELERY_TASK_QUEUES
        if candidate.exchange.name == exchange and candidate.routing_key == routing_key
    )
    return found


def declared(stack: Stack, queue: Queue) -> tuple[int, int]:
    """``queue``'s message and consumer counts on the module's vhost ((0, 0) while it is not declared)."""
    with Connection(stack.rabbitmq_url) as connection:
        try:
            # The broker's declare-ok (name, message and consumer counts); kombu's stubs say the name alone.
            result: Any = queue(connection.default_channel).queue_declare(passive=True)
        except connection.channel_errors:
            return 0, 0
    return int(result.message_count), int(result.consumer_count)


def publish(stack: Stack, task: str, *args: object) -> str:
    """Send ``task`` to the module's vhost; its id.

    The message carries no time limits of its own, so the worker's apply: a publisher that has the task
    registered writes its own settings' limits into the message, and the worker prefers those.
    """
    with app.connection_for_write(stack.rabbitmq_url) as connection:
        result = app.send_task(task, args=list(args), connection=connection, time_limit=None, soft_time_limit=None)
    return str(result.id)


def test_a_runaway_task_is_killed_into_the_dead_letter_queue_and_the_worker_serves_on(
    stack: Stack, tmp_path: Path
) -> None:
    # Given a worker with small limits and the test-only tasks, consuming the default queue.
    worker = stack.start(
        "worker",
        "worker",
        "--include",
        runaway_tasks.__name__,
        env={"CELERY_TASK_SOFT_TIME_LIMIT": str(SOFT_LIMIT), "CELERY_TASK_TIME_LIMIT": str(HARD_LIMIT)},
    )
    default = task_queue(settings.CELERY_TASK_DEFAULT_QUEUE)
    dead_letters = dead_letter_queue_of(default)
    wait_for(lambda: declared(stack, default)[1] >= 1, seconds=60, what="the worker consuming", log=worker.log)

    # When a task that ignores its soft limit is sent.
    runaway_id = publish(stack, runaway_tasks.runaway.name, RUNAWAY_SECONDS)

    # Then the hard limit kills its child once, and the message goes straight to the dead letters.
    wait_for(lambda: declared(stack, dead_letters)[0] == 1, seconds=60, what="a dead letter", log=worker.log)
    # The message is rejected before the child is killed: wait for the kill to be logged too.
    sigkill = "exited with 'signal 9 (SIGKILL)'"
    wait_for(lambda: sigkill in worker.output(), seconds=30, what="the child killed", log=worker.log)
    log = worker.output()
    assert f"Soft time limit ({SOFT_LIMIT}s) exceeded for {runaway_tasks.runaway.name}[{runaway_id}]" in log
    killed = f"Hard time limit ({HARD_LIMIT}s) exceeded for {runaway_tasks.runaway.name}[{runaway_id}]"
    # Celery 5.7 alone would requeue it, to be killed again up to the delivery limit (core.tasks).
    assert log.count(killed) == 1
    assert declared(stack, default)[0] == 0
    with Connection(stack.rabbitmq_url) as connection:
        letter = dead_letters(connection.default_channel).get(no_ack=True)
    assert letter is not None
    headers: dict[str, Any] = dict(letter.headers)
    assert headers["id"] == runaway_id
    assert headers["x-death"][0]["queue"] == default.name

    # And the worker still serves: a quick task runs, and SIGTERM stops the worker cleanly.
    marker = tmp_path / "marked"
    publish(stack, runaway_tasks.mark.name, str(marker))
    wait_for(marker.exists, seconds=30, what="the quick task", log=worker.log)
    assert worker.terminate(seconds=60) == 0  # a warm shutdown: slower when CI runs the suite two workers wide


def test_beat_writes_its_schedule_in_the_state_directory_and_stops_on_sigterm(stack: Stack) -> None:
    for stale in stack.state_dir.glob("celerybeat-schedule*"):
        stale.unlink()

    beat = stack.start("beat", "beat")

    wait_for(
        lambda: "beat: Starting..." in beat.output() and any(stack.state_dir.glob("celerybeat-schedule*")),
        seconds=60,
        what="beat started with its schedule file",
        log=beat.log,
    )
    assert beat.terminate() == 0


def test_the_demo_walkthrough_holds_against_the_api_on_gevent_and_a_real_worker(stack: Stack) -> None:
    # Given the api as the image runs it (the committed configuration: four gevent workers) and a worker.
    stack.start("worker-demo", "worker")
    _, port = stack.start_api("api-demo", GUNICORN_WORKERS="4")

    # When the researchers' walkthrough runs against it, as a user runs it.
    result = subprocess.run(  # noqa: S603  # nosec B603 - our own script, fixed arguments
        ["bash", str(ROOT / "scripts" / "demo.sh")],  # noqa: S607 - bash from PATH, as a user runs it
        env={**stack.env, "BASE_URL": f"http://localhost:{port}", "EXPORT_TIMEOUT": "90"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    # Then every step holds: sign-in, PHI under consent and redacted, withdrawal, the second factor, the export
    # built by the worker from the broker (its one record suppressed: k is the production default here).
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "demo finished: 20 steps, every answer as expected" in result.stdout
    assert "given_name: null, mrn: null" in result.stdout, "the researcher's read has its PHI redacted"
    assert "code: consent_not_covering_purpose" in result.stdout, "withdrawal is honoured at once"
    assert "records suppressed: 1" in result.stdout

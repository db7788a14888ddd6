"""The suite across xdist workers: each worker's stores are its own (tests/support/parallel.py)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from django.conf import settings

from config.settings import test as test_settings
from tests.support import parallel, vault_policy
from tests.support.parallel import redis_url_for, worker_environment

ENVIRON = {
    "TEST_REDIS_URL": "redis://127.0.0.1:6379/15",
    "TEST_CACHE_URL": "redis://127.0.0.1:6379/14",
    "TEST_LOCAL_KEY_FILE": "/var/lib/cgw/keys.json",
    "LOCAL_STATE_DIR": "/var/lib/cgw/state",
}


def test_the_first_worker_keeps_the_configured_stores() -> None:
    assert worker_environment(ENVIRON, 0) == {}


def test_two_workers_share_no_redis_database_key_file_or_state_directory() -> None:
    first, second = ({**ENVIRON, **worker_environment(ENVIRON, index)} for index in (0, 1))

    databases = {first["TEST_REDIS_URL"], first["TEST_CACHE_URL"], second["TEST_REDIS_URL"], second["TEST_CACHE_URL"]}
    assert len(databases) == 4
    assert second["TEST_REDIS_URL"] == "redis://127.0.0.1:6379/13"
    assert second["TEST_CACHE_URL"] == "redis://127.0.0.1:6379/12"
    assert first["TEST_LOCAL_KEY_FILE"] != second["TEST_LOCAL_KEY_FILE"]
    assert first["LOCAL_STATE_DIR"] != second["LOCAL_STATE_DIR"]


def test_a_worker_without_redis_databases_left_refuses_to_start() -> None:
    with pytest.raises(RuntimeError, match="not enough Redis databases"):
        redis_url_for("redis://127.0.0.1:6379/1", 1)


def test_the_defaults_are_the_test_settings_defaults() -> None:
    source = Path(test_settings.__file__).read_text(encoding="utf-8")

    assert f'"TEST_REDIS_URL", "{parallel.DEFAULT_REDIS_URL}"' in source
    assert f'"TEST_CACHE_URL", "{parallel.DEFAULT_CACHE_URL}"' in source
    assert '"cgw-test-local-keys.json"' in source
    assert Path(parallel.DEFAULT_KEY_FILE).name == "cgw-test-local-keys.json"


def test_this_process_reads_the_stores_its_worker_was_given() -> None:
    # Under xdist, the variables were set before Django read its settings; outside it, they are the configured ones.
    assert os.environ.get("TEST_STORES_OF") == os.environ.get("PYTEST_XDIST_WORKER")
    assert os.environ.get("TEST_REDIS_URL", parallel.DEFAULT_REDIS_URL) == settings.REDIS_URL
    assert str(settings.LOCAL_KEY_FILE) == os.environ.get("TEST_LOCAL_KEY_FILE", parallel.DEFAULT_KEY_FILE)
    assert str(settings.LOCAL_STATE_DIR) == os.environ.get("LOCAL_STATE_DIR", str(settings.LOCAL_STATE_DIR))


def test_a_vault_policy_refusal_in_a_worker_fails_the_controllers_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # Under xdist the controller sees no worker's session: the refusal must travel with the worker's output.
    monkeypatch.setattr(vault_policy, "SESSION", vault_policy.PolicyUsage())
    refusal = "update transit/keys/x (rule none, parameters [])"
    worker = SimpleNamespace(
        workeroutput={"vault_policy": {"granted": [("transit/encrypt/*", "update")], "refused": [refusal]}}
    )
    controller = SimpleNamespace(config=SimpleNamespace(), exitstatus=pytest.ExitCode.OK)

    vault_policy.pytest_testnodedown(worker, None)
    vault_policy.pytest_sessionfinish(cast(pytest.Session, controller), pytest.ExitCode.OK)

    assert controller.exitstatus == pytest.ExitCode.TESTS_FAILED
    assert vault_policy.SESSION.granted == {("transit/encrypt/*", "update")}
    assert vault_policy.SESSION.refusals() == [refusal]

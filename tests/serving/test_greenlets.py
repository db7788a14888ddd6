"""psycopg 3, redis-py, the Rego engine, the data-key cache and the tenant state under gevent's patching, for real.

``greenlet_probe.py`` runs in a process of its own, patched as gunicorn's
gevent worker patches, against the test database and Redis: two greenlets'
queries are seen active together in ``pg_stat_activity`` (psycopg 3 waits
through gevent's hub, it does not block the worker), two blocking pops are
seen together by Redis, and greenlets of alpha and beta interleaved over
``schema_context``, the key cache and the policy engine each keep their own
community, key and decision.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from django.conf import settings

from tests.support import served
from tests.support.served import ROOT

PROBE = ROOT / "tests" / "serving" / "greenlet_probe.py"


@pytest.fixture(scope="module")
def findings(django_db_setup: None) -> dict[str, Any]:
    """What the probe process saw (one run for the module)."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.support.served_settings",
        "DATABASE_URL": served.suite_database_url(),
        "DATABASE_OWNER_URL": "",
        "TEST_JWT_SIGNING_KEYS_DIR": str(settings.JWT_SIGNING_KEYS_DIR),
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(  # noqa: S603 - the probe beside this file, fixed
        [sys.executable, str(PROBE)], cwd=ROOT, env=environment, capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:]
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def test_the_probe_ran_patched_as_a_gevent_worker(findings: dict[str, Any]) -> None:
    assert findings["patched"] is True


def test_two_greenlets_queries_are_active_in_postgresql_at_the_same_time(findings: dict[str, Any]) -> None:
    assert findings["queries"]["active_at_once"] == 2


def test_each_greenlet_queries_its_own_communitys_schema(findings: dict[str, Any]) -> None:
    for seen in findings["queries"]["sleepers"]:
        assert seen["schema_in_database"] == seen["slug"]
        assert seen["schema_name"] == seen["slug"]


def test_two_greenlets_block_on_redis_at_the_same_time_and_each_gets_its_own_value(findings: dict[str, Any]) -> None:
    assert findings["redis"]["blocked_at_once"] >= 2
    assert findings["redis"]["popped"] == findings["redis"]["keys"]


def test_interleaved_greenlets_seal_with_their_own_communitys_key_which_the_other_cannot_open(
    findings: dict[str, Any],
) -> None:
    results = findings["keys"]["results"]
    assert len(results) == 40
    for result in results:
        assert result["community"] == result["slug"]
        assert result["opened"] == result["expected"]
        assert result["crossed"] is False


def test_the_key_cache_unwraps_each_communitys_key_a_bounded_number_of_times(findings: dict[str, Any]) -> None:
    assert 2 <= findings["keys"]["provider_calls"] <= 40


def test_concurrent_greenlets_get_the_same_policy_decisions_as_one_after_another(findings: dict[str, Any]) -> None:
    assert findings["policy"]["concurrent"] == findings["policy"]["sequential"]
    assert set(findings["policy"]["sequential"]) == {True, False}

"""Whether each Redis operation that touches several keys would run on a Redis Cluster.

A cluster refuses a command, a MULTI/EXEC transaction or a script whose keys
hash to different slots (CROSSSLOT), and a script may touch only the keys it
declares in KEYS (an undeclared key works only by luck: same slot, no slot
migration under way). The slot of a key is the CRC16 of the key, or of the part
between the first ``{`` and the next ``}`` when there is one (the hash tag).

Each operation below is run against the test Redis, every command it sends is
recorded, and the keys of each multi-key unit (a multi-key command, a MULTI/EXEC,
a script) are hashed to their slots. A pipeline that is not a transaction is not
a unit: a cluster client splits it by node (docs/operations/sharding.md, "Redis
Cluster").
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.client import Pipeline
from redis.crc import key_slot

from core.generations import GenerationCache
from core.ratelimit import check
from security.audit.refusals import refusal_admitted
from security.identity.revocation import is_revoked, revoke_session, revoke_token
from security.identity.throttle import reserve_login_attempt

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("config", "core", "gateway", "operations", "policy", "security", "services", "tenants", "vault")
# Commands whose every argument after the name is a key; EVAL and EVALSHA name theirs by count.
ALL_KEYS = frozenset({"MGET", "DEL", "UNLINK", "EXISTS", "TOUCH", "WATCH", "SUNION", "SINTER", "SDIFF"})
SCRIPTS = frozenset({"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO"})
# A call whose first argument is a key, in a script: redis.call('GET', <key>, ...).
_CALL = re.compile(r"redis\.call\(\s*'([A-Za-z]+)'\s*(?:,\s*([^,)]+))?")
_KEYLESS = frozenset({"TIME", "PING", "ECHO"})


@dataclass
class Recorder:
    """Every unit of work sent to Redis that names more than one key, with those keys."""

    units: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def command(self, args: tuple[Any, ...]) -> None:
        name, keys = str(args[0]).upper(), _keys(args)
        if len(keys) > 1:
            self.units.append((name, keys))

    def transaction(self, stack: list[tuple[tuple[Any, ...], Any]]) -> None:
        keys = tuple(key for args, _ in stack for key in _keys(args))
        if len(set(keys)) > 1:
            self.units.append(("MULTI", keys))


def _keys(args: tuple[Any, ...]) -> tuple[str, ...]:
    name = str(args[0]).upper()
    if name in SCRIPTS:
        count = int(args[2])
        return tuple(str(key) for key in args[3 : 3 + count])
    if name in ALL_KEYS:
        return tuple(str(key) for key in args[1:])
    if name in {"MSET", "MSETNX"}:
        return tuple(str(key) for key in args[1::2])
    return (str(args[1]),) if len(args) > 1 else ()


def slots(keys: tuple[str, ...]) -> set[int]:
    """The cluster slots of ``keys``."""
    return {key_slot(key.encode("utf-8")) for key in keys}


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Record what every Redis client sends: single commands, and the commands of each MULTI/EXEC."""
    recorded = Recorder()
    send: Callable[..., Any] = redis.Redis.execute_command
    execute: Callable[..., list[Any]] = Pipeline.execute

    def sending(self: redis.Redis, *args: Any, **options: Any) -> Any:
        recorded.command(args)
        return send(self, *args, **options)

    def executing(self: Pipeline, raise_on_error: bool = True) -> list[Any]:
        if self.__dict__.get("transaction") is True:  # the attribute, which the stubs take for the method
            recorded.transaction(list(self.command_stack))
        return execute(self, raise_on_error)

    monkeypatch.setattr(redis.Redis, "execute_command", sending)
    monkeypatch.setattr(Pipeline, "execute", executing)
    return recorded


def _login_throttle() -> None:
    reserve_login_attempt(email="ada@example.org", ip="203.0.113.10").failed()


def _revocation() -> None:
    revoke_token("a-token", expires_at=2_000_000_000)
    revoke_session("a-session")
    assert is_revoked(token_id="a-token", session_id="a-session")


def _refusal_bound() -> None:
    refusal_admitted(code="rate_limited", host="alpha.localhost", client="203.0.113.10")


def _rate_limit() -> None:
    assert check("ip:203.0.113.10", per=100, period_seconds=60, burst=10).allowed


OPERATIONS = [
    pytest.param(_rate_limit, id="rate-limit (core/ratelimit.py, one key)"),
    pytest.param(_login_throttle, id="login throttle (security/identity/throttle.py)"),
    pytest.param(_revocation, id="revocation (security/identity/revocation.py)"),
    pytest.param(_refusal_bound, id="refusal bound (security/audit/refusals.py)"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_multi_key_unit_of_the_operation_hashes_to_one_cluster_slot(
    operation: Callable[[], None], recorder: Recorder
) -> None:
    operation()

    crossing = [(name, keys, sorted(slots(keys))) for name, keys in recorder.units if len(slots(keys)) > 1]
    assert not crossing, crossing


@pytest.mark.django_db
def test_the_generation_cache_s_keys_share_a_slot_as_it_reads_and_invalidates(
    recorder: Recorder, clean_redis: redis.Redis
) -> None:
    """The lookup script declares both keys; the move to the next generation drops the answers in one MULTI."""
    cache = GenerationCache("breakglass")
    lookup = cache.get("alpha", "a-user")
    cache.put("alpha", lookup, "a-user", {"grant": None})
    cache.forget("alpha")  # at once (the commit that would move it again never comes in this test)
    stored = sorted(str(key) for key in clean_redis.keys("*breakglass:*"))

    assert stored == ["breakglass:generation:alpha"]  # the answers went with the generation they were read at
    assert {name for name, _ in recorder.units} == {"EVALSHA", "MULTI"}  # EVALSHA again after a NOSCRIPT
    assert all(slots(keys) == {key_slot(b"breakglass:generation:alpha")} for _, keys in recorder.units)


def test_the_recorder_sees_a_cross_slot_transaction_and_the_slots_follow_redis(
    recorder: Recorder, clean_redis: redis.Redis
) -> None:
    """The checks above can fail: a MULTI over two untagged keys is caught, and the same keys tagged are not."""
    for first, second in (("a:alpha", "b:alpha"), ("a:{alpha}", "b:{alpha}")):
        with clean_redis.pipeline(transaction=True) as pipeline:
            pipeline.set(first, "1")
            pipeline.set(second, "1")
            pipeline.execute()

    assert [len(slots(keys)) for _, keys in recorder.units] == [2, 1]
    assert key_slot(b"foo") == 12182  # CLUSTER KEYSLOT foo, as Redis's own documentation gives it
    assert key_slot(b"{user1000}.following") == key_slot(b"{user1000}.followers")


def _scripts() -> Iterator[tuple[str, str]]:
    """Every Lua script in the project's code: each string constant that calls ``redis.call``."""
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and "redis.call(" in node.value:
                    yield f"{path.relative_to(ROOT)}:{node.lineno}", node.value


def undeclared(script: str) -> list[str]:
    """The key arguments of ``script``'s calls that are not ``KEYS[n]``."""
    return [
        f"{command} {argument}"
        for command, argument in _CALL.findall(script)
        if command.upper() not in _KEYLESS and not re.fullmatch(r"\s*KEYS\[\d+\]\s*", argument)
    ]


SCRIPT_PARAMS = [pytest.param(source, id=where) for where, source in _scripts()]


def test_the_project_s_scripts_are_found() -> None:
    assert {where.split(":")[0] for where, _ in _scripts()} >= {
        "core/generations.py",
        "core/ratelimit.py",
        "security/identity/throttle.py",
        "security/audit/refusals.py",
    }


@pytest.mark.parametrize("script", SCRIPT_PARAMS)
def test_every_key_a_script_touches_is_declared_in_keys(script: str) -> None:
    assert not undeclared(script)


def test_the_declared_key_check_sees_a_key_built_from_argv() -> None:
    assert undeclared("return redis.call('GET', ARGV[1] .. 'x')") == ["GET ARGV[1] .. 'x'"]
    assert undeclared("redis.call('TIME') return redis.call('INCR', KEYS[2])") == []

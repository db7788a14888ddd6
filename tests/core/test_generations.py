"""The generation cache: answers under an HMAC, each bounded by GENERATION_CACHE_SECONDS on its own."""

from __future__ import annotations

import time

import pytest
import redis
import time_machine
from django.conf import settings

from core.generations import GenerationCache

CACHE = GenerationCache("test-answers")
SCOPE = "all"
ANSWERS = "{test-answers:generation:all}:answers"  # fields: <generation>:<field>


def put(field: str, value: object) -> None:
    CACHE.put(SCOPE, CACHE.get(SCOPE, field), field, value)


def test_an_answer_is_a_hit_within_the_bound(clean_redis: redis.Redis) -> None:
    started = time.time()
    with time_machine.travel(started, tick=False):
        put("a", {"roles": ["researcher"]})
    with time_machine.travel(started + settings.GENERATION_CACHE_SECONDS - 1, tick=False):
        lookup = CACHE.get(SCOPE, "a")

    assert lookup.hit
    assert lookup.value == {"roles": ["researcher"]}


def test_an_answer_outlives_its_bound_no_longer_when_others_renew_the_hash(clean_redis: redis.Redis) -> None:
    started = time.time()
    with time_machine.travel(started, tick=False):
        put("a", "answer A")
    with time_machine.travel(started + 25, tick=False):
        put("b", "answer B")  # renews the whole hash's expiry
    assert clean_redis.ttl(ANSWERS) > 0  # the hash, and A in it, is still in Redis...

    with time_machine.travel(started + 40, tick=False):
        stale, fresh = CACHE.get(SCOPE, "a"), CACHE.get(SCOPE, "b")

    assert not stale.hit  # ...but A is past GENERATION_CACHE_SECONDS, so it is asked again
    assert stale.generation == "0"  # a miss that may be remembered again
    assert fresh.hit
    assert fresh.value == "answer B"


def test_an_answer_stored_in_the_future_is_held_to_the_same_bound(clean_redis: redis.Redis) -> None:
    started = time.time()
    with time_machine.travel(started + 3600, tick=False):  # a process whose clock runs an hour ahead
        put("a", "from the future")

    assert not CACHE.get(SCOPE, "a").hit


def test_the_stored_at_time_is_under_the_hmac(clean_redis: redis.Redis) -> None:
    started = time.time()
    with time_machine.travel(started, tick=False):
        put("a", "answer A")
    mac, _, body = str(clean_redis.hget(ANSWERS, "0:a")).partition(".")
    _, _, answer = body.partition(".")
    clean_redis.hset(ANSWERS, "0:a", f"{mac}.{int((started + 25) * 1000)}.{answer}")  # made younger by hand

    with time_machine.travel(started + 40, tick=False):
        assert not CACHE.get(SCOPE, "a").hit


def test_moving_the_generation_on_drops_the_earlier_answers_and_a_late_put_is_never_read(
    clean_redis: redis.Redis,
) -> None:
    stale_miss = CACHE.get(SCOPE, "a")  # read before the change...
    put("b", "answer B")
    CACHE._next_generation(SCOPE)

    assert not clean_redis.exists(ANSWERS)  # nothing of generation 0 stays in Redis
    CACHE.put(SCOPE, stale_miss, "a", "read before the change")  # ...remembered after it
    assert clean_redis.hkeys(ANSWERS) == ["0:a"]
    assert not CACHE.get(SCOPE, "a").hit
    assert CACHE.get(SCOPE, "a").generation == "1"


def test_a_scope_with_a_brace_is_refused_since_it_would_change_the_keys_hash_tag(clean_redis: redis.Redis) -> None:
    with pytest.raises(ValueError, match="braces"):
        CACHE.get("al}pha", "a")

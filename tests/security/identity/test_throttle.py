"""Login attempts are reserved atomically, so parallel guesses get no extra allowance."""

from __future__ import annotations

import pytest
from django.test import override_settings

from core.errors import TooManyRequests
from core.redis import get_redis
from security.identity.throttle import reserve_login_attempt

# The counters live in Redis (no database): each test starts from an empty one.
pytestmark = pytest.mark.usefixtures("clean_redis")


@override_settings(LOGIN_MAX_FAILURES_PER_ACCOUNT=3)
def test_attempts_still_in_flight_count_against_the_limit() -> None:
    # Three requests checking their passwords at the same time, none finished yet.
    in_flight = [reserve_login_attempt(email="ada@example.org", ip=f"192.0.2.{n}") for n in range(3)]

    with pytest.raises(TooManyRequests):
        reserve_login_attempt(email="ada@example.org", ip="192.0.2.99")
    assert len(in_flight) == 3


@override_settings(LOGIN_MAX_FAILURES_PER_ACCOUNT=2)
def test_an_attempt_given_back_does_not_count() -> None:
    for _ in range(5):
        reserve_login_attempt(email="ada@example.org", ip="192.0.2.1").released()

    reserve_login_attempt(email="ada@example.org", ip="192.0.2.1")


def test_giving_back_an_expired_counter_does_not_resurrect_it() -> None:
    attempt = reserve_login_attempt(email="ada@example.org", ip="192.0.2.1")
    get_redis().flushdb()

    attempt.released()

    assert get_redis().keys("*") == []


def test_redis_holds_neither_the_email_nor_the_address() -> None:
    reserve_login_attempt(email="ada@example.org", ip="192.0.2.1").failed()

    keys = " ".join(str(key) for key in get_redis().keys("*"))
    assert "ada" not in keys
    assert "192.0.2.1" not in keys
    assert all(ttl > 0 for ttl in (get_redis().ttl(key) for key in get_redis().keys("*")))

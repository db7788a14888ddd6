"""The GCRA limiter (:func:`core.ratelimit.check`) against the real Redis: the burst, then the sustained rate.

How the edge applies it (per address, per user, the headers) is in ``tests/gateway/test_edge.py``.
"""

from __future__ import annotations

import pytest

from core.ratelimit import check

# The limiter keeps its buckets in Redis (no database): each test starts from an empty one.
pytestmark = pytest.mark.usefixtures("clean_redis")


def test_the_default_limit_is_100_a_minute_with_bursts_of_200() -> None:
    verdicts = [check("ip:192.0.2.77", per=100, period_seconds=60, burst=200) for _ in range(201)]

    assert sum(verdict.allowed for verdict in verdicts) == 200
    assert verdicts[-1].retry_after_seconds == 1  # one more request every 0.6 s
    assert verdicts[0].limit == 100


def test_a_user_gets_no_more_than_the_hourly_quota_plus_the_burst() -> None:
    verdicts = [check("user:quota", per=1000, period_seconds=3600, burst=100) for _ in range(150)]

    assert sum(verdict.allowed for verdict in verdicts) == 100  # the burst; then one every 3.6 s

"""The rate-limit figures registries announce (`regwatch.ratelimits`)."""

from __future__ import annotations

import pytest

from regwatch.net import Headers
from regwatch.ratelimits import Budget, RateLimits, parse_count


@pytest.mark.parametrize(
    ("value", "count"),
    [
        ("100;w=21600", 100),
        ("76", 76),
        (" 0;w=60", 0),
        ("100, 100;w=21600", 100),
        ("", None),
        (None, None),
        ("many", None),
        ("²", None),
    ],
)
def test_parse_count(value: str | None, count: int | None) -> None:
    assert parse_count(value) == count


@pytest.mark.parametrize(
    ("limit", "remaining", "low"),
    [(100, 10, False), (100, 9, True), (100, 0, True), (5, 1, False), (5, 0, True)],
)
def test_the_reserve_is_a_tenth_of_the_limit_at_least_one(
    limit: int, remaining: int, low: bool
) -> None:
    assert Budget(limit, remaining).low is low


def test_the_latest_figure_of_each_host_is_kept() -> None:
    limits = RateLimits()
    limits.note("hub", Headers({"RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "50"}))
    limits.note("hub", Headers({"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "3"}))
    limits.note("other", Headers({"ratelimit-limit": "100"}))
    assert limits.budget("hub") == Budget(100, 3)
    assert limits.low("hub")
    assert limits.budget("other") is None
    assert not limits.low("other"), "unknown is not low"

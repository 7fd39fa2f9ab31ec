from __future__ import annotations

import pytest

from regwatch.errors import ConfigError
from regwatch.net import RetryPolicy, is_transient_status, retry_after_seconds


def test_default_schedule_is_the_go_resources() -> None:
    policy = RetryPolicy.from_env({})
    assert (policy.base, policy.multiplier, policy.max_interval, policy.budget) == (
        5.0,
        1.5,
        300.0,
        3600.0,
    )
    no_jitter = [policy.interval(n, rand=lambda: 0.5) for n in range(12)]
    assert no_jitter[:4] == [5.0, 7.5, 11.25, 16.875]
    assert no_jitter[-1] == 300.0, "capped at five minutes"


def test_jitter_stays_within_half_either_side() -> None:
    policy = RetryPolicy()
    assert policy.interval(0, rand=lambda: 0.0) == 2.5
    assert policy.interval(0, rand=lambda: 1.0) == 7.5


def test_base_from_environment_scales_the_schedule() -> None:
    policy = RetryPolicy.from_env({"REGWATCH_RETRY_BASE_SECONDS": "0.01"})
    assert (policy.base, policy.max_interval, policy.budget) == (0.01, 0.6, 7.2)


@pytest.mark.parametrize("raw", ["fast", "-1"])
def test_bad_base_is_a_config_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="REGWATCH_RETRY_BASE_SECONDS"):
        RetryPolicy.from_env({"REGWATCH_RETRY_BASE_SECONDS": raw})


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("120", 120.0),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
    ],
)
def test_retry_after_header(value: str | None, seconds: float | None) -> None:
    now = 1445412480.0  # 2015-10-21 07:28:00 UTC
    assert retry_after_seconds(value, now=lambda: now) == seconds


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (200, False),
        (404, False),
        (401, False),
        (408, True),
        (429, True),
        (500, True),
        (501, False),
        (502, True),
        (503, True),
        (504, True),
        (505, False),
    ],
)
def test_transient_statuses(status: int, transient: bool) -> None:
    assert is_transient_status(status) is transient

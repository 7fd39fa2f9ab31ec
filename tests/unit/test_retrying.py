"""The one retry loop on a fake clock: errors judged transient, answers worth another try."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from regwatch.errors import ConfigError, ConnectionDropped, RegwatchError
from regwatch.retrying import Again, RetryPolicy, retry

POLICY = RetryPolicy(base=1.0, multiplier=2.0, max_interval=8.0, budget=30.0, jitter=0.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def script(*outcomes: str | RegwatchError) -> Callable[[], str]:
    """An operation that raises or returns each outcome in turn."""
    pending: Iterator[str | RegwatchError] = iter(outcomes)

    def operation() -> str:
        outcome = next(pending)
        if isinstance(outcome, RegwatchError):
            raise outcome
        return outcome

    return operation


def dropped(exc: RegwatchError) -> bool:
    return isinstance(exc, ConnectionDropped)


def busy(answer: str) -> Again | None:
    """'busy' and 'busy:N' (N seconds of Retry-After) are worth another try."""
    if not answer.startswith("busy"):
        return None
    _, _, wanted = answer.partition(":")
    return Again(f"x answered {answer}", float(wanted or 0))


def test_a_transient_error_is_retried_on_the_schedule(clock: Clock) -> None:
    operation = script(ConnectionDropped("a"), ConnectionDropped("b"), "done")

    result = retry(operation, policy=POLICY, transient=dropped, sleep=clock.sleep, clock=clock)

    assert result == "done"
    assert clock.sleeps == [1.0, 2.0]


def test_an_error_that_is_not_transient_is_raised_at_once(clock: Clock) -> None:
    with pytest.raises(ConfigError):
        retry(
            script(ConfigError("bad")),
            policy=POLICY,
            transient=dropped,
            sleep=clock.sleep,
            clock=clock,
        )
    assert clock.sleeps == []


def test_the_last_error_is_raised_when_the_next_wait_would_pass_the_budget(clock: Clock) -> None:
    endless = ConnectionDropped("reset")

    def operation() -> str:
        raise endless

    with pytest.raises(ConnectionDropped) as caught:
        retry(operation, policy=POLICY, transient=dropped, sleep=clock.sleep, clock=clock)

    assert caught.value is endless
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0, 8.0]  # 23 s; one more 8 s would pass 30 s


def test_an_answer_worth_another_try_is_discarded_and_asked_again(clock: Clock) -> None:
    discarded: list[str] = []

    result = retry(
        script("busy", "busy:5", "ok"),
        policy=POLICY,
        again=busy,
        discard=discarded.append,
        sleep=clock.sleep,
        clock=clock,
    )

    assert result == "ok"
    assert discarded == ["busy", "busy:5"]
    assert clock.sleeps == [1.0, 5.0], "the server's wait wins when longer"


def test_the_last_answer_is_returned_when_its_wait_passes_the_budget(clock: Clock) -> None:
    discarded: list[str] = []

    result = retry(
        script("busy:3600"),
        policy=POLICY,
        again=busy,
        discard=discarded.append,
        sleep=clock.sleep,
        clock=clock,
    )

    assert result == "busy:3600"
    assert discarded == []
    assert clock.sleeps == []


def test_a_clean_up_that_fails_vetoes_the_retry(clock: Clock) -> None:
    cleaned: list[bool] = []

    def clean() -> bool:
        cleaned.append(True)
        return len(cleaned) < 2

    with pytest.raises(ConnectionDropped, match="second"):
        retry(
            script(ConnectionDropped("first"), ConnectionDropped("second"), "never"),
            policy=POLICY,
            transient=dropped,
            before_retry=clean,
            sleep=clock.sleep,
            clock=clock,
        )
    assert cleaned == [True, True]
    assert clock.sleeps == [1.0]


def test_a_vetoed_answer_is_returned_without_being_discarded(clock: Clock) -> None:
    discarded: list[str] = []

    result = retry(
        script("busy"),
        policy=POLICY,
        again=busy,
        discard=discarded.append,
        before_retry=lambda: False,
        sleep=clock.sleep,
        clock=clock,
    )

    assert result == "busy"
    assert discarded == []


def test_every_retry_is_one_warning_with_its_reason_and_wait(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="regwatch")

    retry(
        script(ConnectionDropped("get x: connection reset"), "busy", "ok"),
        policy=POLICY,
        transient=dropped,
        again=busy,
        sleep=clock.sleep,
        clock=clock,
    )

    assert [r.getMessage() for r in caplog.records] == [
        "transient error: get x: connection reset; retrying in 1.0s",
        "transient error: x answered busy; retrying in 2.0s",
    ]


def test_the_policy_schedule_is_unchanged_by_the_move() -> None:
    policy = RetryPolicy.from_env({"REGWATCH_RETRY_BASE_SECONDS": "2"})
    assert (policy.base, policy.max_interval, policy.budget) == (2.0, 120.0, 1440.0)
    assert [RetryPolicy().interval(n, rand=lambda: 0.5) for n in range(3)] == [5.0, 7.5, 11.25]

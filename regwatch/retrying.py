"""The one retry loop: backoff with jitter inside a time budget, for requests and whole operations.

The transport retries one request whose answer (408, 429, 5xx) or dropped connection says "try
again"; `get` and `put` retry a whole operation whose error is transient. Both are `retry` with
different judges, so the schedule, the budget and the log line are the same everywhere.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

from regwatch.errors import ConfigError, RegwatchError

log = logging.getLogger(__name__)

RETRY_BASE_ENV: Final = "REGWATCH_RETRY_BASE_SECONDS"
REQUEST_TIMEOUT_ENV: Final = "REGWATCH_REQUEST_TIMEOUT_SECONDS"
DEFAULT_REQUEST_TIMEOUT: Final = 60.0
"""Seconds a request's whole answer may take (`net.Transport`'s deadline)."""

_T = TypeVar("_T")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for transient failures.

    The defaults are the Go resource's schedule (5 s × 1.5, at most 5 min apart, give up after
    1 h). `from_env` scales the whole schedule with the base so tests can run it in milliseconds.
    """

    base: float = 5.0
    multiplier: float = 1.5
    max_interval: float = 300.0
    budget: float = 3600.0
    jitter: float = 0.5
    wait_out_rate_limits: bool = True
    """False: a 429 raises `RateLimited` (with its `Retry-After`) at once, for a daemon whose
    worker must not sit out an hour of retries while other registries wait."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> RetryPolicy:
        base = env_seconds(environ, RETRY_BASE_ENV, zero_ok=True)
        if base is None:
            return cls()
        return cls(base=base, max_interval=base * 60, budget=base * 720)

    def interval(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The wait before retry number `attempt` (0-based), with ±jitter randomisation."""
        raw = min(self.base * self.multiplier**attempt, self.max_interval)
        return raw * (1 - self.jitter + 2 * self.jitter * rand())


def request_timeout_from_env(environ: Mapping[str, str] = os.environ) -> float:
    """The answer deadline the environment asks for. Read here, beside the retry schedule, not
    in `net`: a front end reads it without importing requests, which a check answered from the
    log never needs."""
    return env_seconds(environ, REQUEST_TIMEOUT_ENV, zero_ok=False) or DEFAULT_REQUEST_TIMEOUT


def env_seconds(environ: Mapping[str, str], name: str, *, zero_ok: bool) -> float | None:
    """A duration in seconds from the environment; None when unset, ConfigError when not usable."""
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        kind = "a non-negative" if zero_ok else "a positive"
        raise ConfigError(f"{name}={raw!r} is not {kind} number of seconds")
    return value


@dataclass(frozen=True)
class Again:
    """A result worth asking for again: why (for the log line), and the least wait it asked for
    (an HTTP `Retry-After`)."""

    reason: str
    at_least: float = 0.0


def _never(error: RegwatchError) -> bool:
    return False


def _final(result: object) -> Again | None:
    return None


def _keep(result: object) -> None:
    """A result that holds nothing needs no discarding."""


def _go_on() -> bool:
    return True


def retry(
    operation: Callable[[], _T],
    *,
    policy: RetryPolicy,
    transient: Callable[[RegwatchError], bool] = _never,
    again: Callable[[_T], Again | None] = _final,
    discard: Callable[[_T], None] = _keep,
    before_retry: Callable[[], bool] = _go_on,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> _T:
    """Run `operation` until it succeeds, fails for good, or the next wait would pass the budget.

    An error is retried when `transient` says so, else raised; a result is returned unless
    `again` says it is worth another try (then it is `discard`ed first). When the budget runs
    out, the last error is raised and the last result returned as they are. `before_retry` runs
    after the log line and before the wait (a clean-up): False vetoes the retry, and the error
    (or result) stands.
    """
    started = clock()
    attempt = 0
    while True:
        try:
            result = operation()
        except RegwatchError as exc:
            delay = policy.interval(attempt)
            if not transient(exc) or clock() - started + delay > policy.budget:
                raise
            log.warning("transient error: %s; retrying in %.1fs", exc, delay)
            if not before_retry():
                raise
        else:
            verdict = again(result)
            if verdict is None:
                return result
            delay = max(policy.interval(attempt), verdict.at_least)
            if clock() - started + delay > policy.budget:
                return result
            log.warning("transient error: %s; retrying in %.1fs", verdict.reason, delay)
            if not before_retry():
                return result
            discard(result)
        sleep(delay)
        attempt += 1

"""When a watch first polls after a start, and how its trigger spreads runs: with a fixed clock.

A restart must not stampede the registries: a watch polled within its interval waits for its
turn, one that is overdue (or never polled) goes at once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from regwatch.frontends.daemon import Daemon, next_due, trigger_of
from regwatch.frontends.metrics import Metrics
from regwatch.frontends.watchconfig import DaemonConfig, Jitter, Watch
from regwatch.refs import Repository
from regwatch.specs import WatchSpec

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NO_JITTER = Jitter()


class LastSuccess:
    """The part of the service the first run reads: when the repository last polled fine."""

    def __init__(self, last: datetime | None) -> None:
        self.last = last

    def last_success(self, spec: WatchSpec) -> datetime | None:
        return self.last


def watch(
    every: timedelta | None = None, cron: str | None = None, jitter: Jitter = NO_JITTER
) -> Watch:
    spec = WatchSpec(Repository("registry.test", "team/app"))
    return Watch("app", spec, every, cron, jitter)


def first_run(item: Watch, last: datetime | None) -> datetime:
    config = DaemonConfig(Path("c.yaml"), "sqlite://", (item,))
    service: Any = LastSuccess(last)
    daemon = Daemon(config, service, Metrics(), clock=lambda: NOW)
    return daemon.first_run(item, trigger_of(item), NOW)


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        (None, NOW),
        (NOW - timedelta(minutes=10), NOW + timedelta(minutes=50)),
        (NOW - timedelta(hours=1), NOW),
        (NOW - timedelta(days=3), NOW),
    ],
    ids=["never polled", "polled 10 min ago", "exactly due", "long overdue"],
)
def test_an_interval_watch_polls_at_once_only_when_due(
    last: datetime | None, expected: datetime
) -> None:
    assert first_run(watch(every=timedelta(hours=1)), last) == expected


def test_a_cron_watch_waits_for_its_next_fire_after_the_last_poll() -> None:
    hourly = watch(cron="0 * * * *")
    assert first_run(hourly, NOW - timedelta(minutes=10)) == NOW
    assert first_run(hourly, NOW + timedelta(minutes=0)) == NOW + timedelta(hours=1)
    assert first_run(hourly, None) == NOW


def test_jitter_is_a_share_of_the_interval_or_a_duration() -> None:
    assert trigger_of(watch(every=timedelta(minutes=10), jitter=Jitter(0.1))).jitter == 60
    assert (
        trigger_of(
            watch(every=timedelta(minutes=10), jitter=Jitter(duration=timedelta(seconds=5)))
        ).jitter
        == 5
    )
    assert trigger_of(watch(every=timedelta(seconds=5))).jitter is None
    assert trigger_of(watch(cron="*/10 * * * *", jitter=Jitter(0.5))).jitter == 300


def test_status_shows_the_next_turn_after_the_last_poll() -> None:
    assert next_due(watch(every=timedelta(minutes=5)), NOW) == NOW + timedelta(minutes=5)
    assert next_due(watch(cron="30 * * * *"), NOW) == NOW + timedelta(minutes=30)
    assert next_due(watch(every=timedelta(minutes=5)), None) is None


def test_a_jitter_under_a_second_is_kept() -> None:
    assert trigger_of(watch(every=timedelta(seconds=2), jitter=Jitter(0.1))).jitter == 0.2

"""The fleet's pure rules: how long a turn is held, how early it may come, who prefers it."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from regwatch.frontends.fleet import preferred, turn_rule
from regwatch.frontends.watchconfig import Jitter, Watch
from regwatch.refs import Repository
from regwatch.specs import Access, Selection, WatchSpec

SPEC = WatchSpec(Repository("registry.test", "app"), Selection(), Access(None, None, (), False))


NO_JITTER = Jitter()


def watch(
    every: timedelta | None = None, cron: str | None = None, jitter: Jitter = NO_JITTER
) -> Watch:
    return Watch(name="app", spec=SPEC, every=every, cron=cron, jitter=jitter)


def test_a_short_period_holds_for_half_of_it_and_a_long_one_for_ten_seconds() -> None:
    short = turn_rule(watch(every=timedelta(seconds=2)))
    long = turn_rule(watch(every=timedelta(minutes=5)))

    assert short.hold == timedelta(seconds=1)
    assert short.slack == timedelta(milliseconds=500)
    assert long.hold == timedelta(seconds=10)
    assert long.slack == timedelta(seconds=1)


def test_jitter_widens_the_slack_but_never_past_half_the_period() -> None:
    rule = turn_rule(watch(every=timedelta(minutes=5), jitter=Jitter(fraction=0.1)))
    wild = turn_rule(watch(every=timedelta(minutes=5), jitter=Jitter(fraction=0.5)))

    assert rule.slack == timedelta(seconds=61), "two jitters (2 × 30 s) and a second"
    assert wild.slack == timedelta(minutes=2, seconds=30)


def test_a_cron_watch_s_period_is_the_gap_between_two_runs() -> None:
    assert turn_rule(watch(cron="*/15 * * * *")).period == timedelta(minutes=15)


def test_every_daemon_prefers_the_same_member_and_each_gets_a_share() -> None:
    members = ["host-a:1", "host-b:1", "host-c:1"]
    names = [f"watch-{n}" for n in range(300)]

    chosen = [preferred(name, members) for name in names]
    shares = Counter(chosen)

    assert chosen == [preferred(name, list(reversed(members))) for name in names]
    assert set(shares) == set(members)
    assert min(shares.values()) > 60


def test_a_member_leaving_moves_only_its_own_watches() -> None:
    members = ["host-a:1", "host-b:1", "host-c:1"]
    names = [f"watch-{n}" for n in range(300)]

    before = {name: preferred(name, members) for name in names}
    after = {name: preferred(name, members[:2]) for name in names}

    moved = [name for name in names if before[name] != after[name]]
    assert moved
    assert all(before[name] == "host-c:1" for name in moved)
    assert preferred("app", []) is None

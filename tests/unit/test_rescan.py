"""Which known tags a daemon poll re-verifies (`regwatch.rescan`), time injected."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from regwatch.rescan import Rescan, is_full_version, phase

DAY = timedelta(hours=24)
EVERY = timedelta(minutes=5)
START = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
VERSIONS = [f"1.{minor}.{patch}" for minor in range(30) for patch in range(10)]


@pytest.mark.parametrize(
    ("tag", "full"),
    [
        ("1.21.5", True),
        ("v1.21.5", True),
        ("1.21.5-alpine", True),
        ("1.21.5+build", True),
        ("1.21.5-rc.1", True),
        ("1.21.5-alpine3.19", True),
        ("3", False),
        ("3.19", False),
        ("v3.19", False),
        ("3-alpine", False),
        ("3.19-alpine", False),
        ("latest", False),
        ("stable", False),
        ("1.2.3.4", False),
        ("", False),
    ],
)
def test_full_versions_are_major_minor_patch(tag: str, full: bool) -> None:
    assert is_full_version(tag) is full


def test_a_phase_is_stable_and_inside_the_cycle() -> None:
    assert phase("1.2.3", DAY) == phase("1.2.3", DAY)
    assert all(timedelta() <= phase(t, DAY) < DAY for t in VERSIONS)
    assert len({phase(t, DAY) for t in VERSIONS}) == len(VERSIONS)


def test_new_and_mutable_tags_are_always_wanted() -> None:
    share = Rescan(DAY, START + EVERY, START)
    known = {"1.2.3", "latest", "3", "3.19", "stable", "3-alpine"}
    tags = ["latest", "3", "3.19", "stable", "3-alpine", "9.9.9"]
    assert share.wanted(tags, known) == tags


def test_without_a_previous_poll_every_known_version_is_due() -> None:
    assert Rescan(DAY, START, None).wanted(VERSIONS, set(VERSIONS)) == VERSIONS


@pytest.mark.parametrize("gap", [DAY, DAY * 2])
def test_a_gap_of_a_whole_cycle_makes_every_version_due(gap: timedelta) -> None:
    assert Rescan(DAY, START + gap, START).wanted(VERSIONS, set(VERSIONS)) == VERSIONS


def test_a_rescan_shorter_than_the_interval_reverifies_all_on_each_poll() -> None:
    share = Rescan(timedelta(minutes=1), START + EVERY, START)
    assert share.wanted(VERSIONS, set(VERSIONS)) == VERSIONS


def test_each_version_is_verified_exactly_once_per_cycle_spread_over_the_polls() -> None:
    polls = [START + EVERY * n for n in range(DAY // EVERY + 1)]
    seen: dict[str, int] = dict.fromkeys(VERSIONS, 0)
    shares = []
    for since, now in itertools.pairwise(polls):
        wanted = Rescan(DAY, now, since).wanted(VERSIONS, set(VERSIONS))
        shares.append(len(wanted))
        for tag in wanted:
            seen[tag] += 1
    assert set(seen.values()) == {1}, "once per cycle, never twice"
    assert max(shares) <= 6, "300 versions over 288 polls: about one each, never a pile"


def test_irregular_polls_still_verify_each_version_within_a_cycle() -> None:
    gaps = [timedelta(minutes=m) for m in (1, 7, 3, 11, 5, 2, 13)]
    versions = VERSIONS[::5]
    times = [START]
    while times[-1] < START + DAY * 2:
        times.append(times[-1] + gaps[len(times) % len(gaps)])
    last_verified = dict.fromkeys(versions, START)
    for since, now in itertools.pairwise(times):
        for tag in Rescan(DAY, now, since).wanted(versions, set(versions)):
            last_verified[tag] = now
        assert all(now - at <= DAY + max(gaps) for at in last_verified.values())


def test_nothing_is_due_in_an_empty_window() -> None:
    assert Rescan(DAY, START, START).wanted(VERSIONS, set(VERSIONS)) == []

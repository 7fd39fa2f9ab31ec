"""Fold benchmark: what loading a repository's state costs as its stream grows.

Run by hand from the repository root (no registry needed):

    python -m bench.fold [--tags 5000] [--events 100000] [--repeat 5]

Two measurements. First, `fold` alone over 5k / 10k / 20k `TagAppeared` events (one tag each),
the figures issue 9 quotes. Second, a SQLite file store whose stream for one repository holds
`--events` events over `--tags` tags (each tag appears once, then tags move round-robin),
written in batches straight to the store, then one real `record` (a poll that moves one tag, as
`check` records it); then `load_state` of that stream, timed `--repeat` times (median).
Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from regwatch.decide import fold
from regwatch.events import Event, PollSucceeded, TagAppeared, TagMoved
from regwatch.observe import Observation
from regwatch.service.recording import load_state, new_event, record
from regwatch.store.migrate import open_store

STREAM = "127.0.0.1:5000/bench/fold"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
_BATCH = 5_000


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def tag_events(tags: int, total: int) -> list[Event]:
    """`tags` appearances, then moves round-robin until there are `total` events."""
    events: list[Event] = [TagAppeared(tag=f"1.{n}.0", digest=digest(n)) for n in range(tags)]
    current = {n: n for n in range(tags)}
    n = 0
    while len(events) < total:
        slot = n % tags
        new = tags + n
        events.append(
            TagMoved(tag=f"1.{slot}.0", old_digest=digest(current[slot]), new_digest=digest(new))
        )
        current[slot] = new
        n += 1
    return events


def time_fold(count: int) -> float:
    events = tag_events(count, count)
    started = time.perf_counter()
    state = fold(events)
    elapsed = time.perf_counter() - started
    assert len(state.tags) == count
    return elapsed


def build_store(url: str, tags: int, total: int) -> tuple[float, float]:
    """The store, and the wall and CPU time of loading its stream before any poll."""
    with open_store(url) as store:
        events = tag_events(tags, total - 1)
        version = 0
        for start in range(0, len(events), _BATCH):
            batch = [new_event(e, NOW) for e in events[start : start + _BATCH]]
            store.append(STREAM, version, batch)
            version += len(batch)
        started, cpu = time.perf_counter(), time.process_time()
        state, version = load_state(store, STREAM)
        first_load = (time.perf_counter() - started, time.process_time() - cpu)
        poll = Observation(stream=STREAM, taken_at=NOW, resolved={"1.0.0": digest(10**9)})
        record(
            store,
            STREAM,
            state,
            version,
            poll,
            runs=[PollSucceeded(requests=1, duration_seconds=0.0)],
        )
    return first_load


def time_load(url: str, tags: int, repeat: int) -> tuple[float, float, int]:
    """Median wall and CPU time of `load_state`, and the version it loaded."""
    walls, cpus = [], []
    with open_store(url) as store:
        for _ in range(repeat):
            started, cpu = time.perf_counter(), time.process_time()
            state, version = load_state(store, STREAM)
            walls.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu)
            assert len(state.tags) == tags, len(state.tags)
            assert state.tags["1.0.0"] == digest(10**9)
    return statistics.median(walls), statistics.median(cpus), version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=5_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--folds", default="5000,10000,20000")
    args = parser.parse_args()

    print("| measurement | events | time |")
    print("|---|---|---|")
    for count in (int(c) for c in args.folds.split(",") if c):
        print(
            f"| fold of {count:,} TagAppeared | {count:,} | {time_fold(count) * 1000:,.0f} ms |",
            flush=True,
        )
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'fold.db'}"
        started = time.perf_counter()
        first_load, first_cpu = build_store(url, args.tags, args.events)
        built = time.perf_counter() - started
        written = args.events - 1
        print(
            f"| load_state, {args.tags:,} tags, {written:,} events written straight to the"
            f" store (no poll recorded yet) | {written:,} | {first_load * 1000:,.1f} ms"
            f" (CPU {first_cpu * 1000:,.0f} ms) |"
        )
        median, median_cpu, version = time_load(url, args.tags, args.repeat)
        print(
            f"| load_state, {args.tags:,} tags, stream at version {version:,}"
            f" (median of {args.repeat}; store built in {built:.1f} s) | {args.events:,}"
            f" | {median * 1000:,.1f} ms (CPU {median_cpu * 1000:,.1f} ms) |"
        )


if __name__ == "__main__":
    main()

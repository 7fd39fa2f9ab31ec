"""History benchmark: `regwatch history` on a store of a million events over 1,000 repositories.

Run by hand from the repository root (needs GNU time):

    python -m bench.history [--events 1000000] [--repositories 1000] [--repeat 20] [--keep DIR]

It builds a SQLite store at the current schema (created through regwatch, then filled through
the store's own `events` table in one transaction, with the stdlib driver: a million appends
through the service would take an hour and measure nothing of interest here). Each repository
gets the same share of the log in rounds that interleave with every other repository's, as
polls do: per round one `PollSucceeded` in its run stream and nine events in its tag stream
(a new version appears, `latest`, `1`, `edge` and `nightly` move, a build tag appears and the
previous one disappears, every seventh round a full version is re-pushed, and the new index is
inspected with two platforms).

Then it measures, over `--repeat` repositories chosen across the store:

- in the process, with one `Service` (its store opened once): one tag's history
  (`Service.history` and the tag's rows) and an `--at` answer for one tag (the same rows and
  `pointing_at`), each the median time of one answer; a SQLite file is read with the stdlib
  driver there, so one tag's history is also timed through `EventStore` (SQLAlchemy), the path
  a PostgreSQL store and a notification sink take;
- the whole command, as a child process (spawn to exit, GNU time): `regwatch history REPO
  --tag latest --format json` and `regwatch history REPO --at T --tag latest --format json`.

Children run with bytecode caching on (see `bench.startup`); warm-up runs write the `.pyc`
files. Prints a markdown table for docs/benchmarks.md; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.measure import GNU_TIME, duration, log
from regwatch.events import SCHEMA_VERSION
from regwatch.projections.history import movements, pointing_at
from regwatch.refs import Repository
from regwatch.service import Service
from regwatch.store.migrate import open_store

REGISTRY = "registry.bench.example"
START = datetime(2026, 1, 1, tzinfo=UTC)
ROUND = timedelta(minutes=5)
PER_ROUND = 10
"""Events one repository adds per round: nine in its tag stream, one run."""
IN_PROCESS_TARGET = 0.050
COMMAND_TARGET = 0.4
_NOT_IN_A_CONTAINER = frozenset({"PYTHONDONTWRITEBYTECODE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"})


def repository(number: int) -> Repository:
    return Repository(REGISTRY, f"team{number % 40}/app{number}")


def digest(number: int, round_: int, salt: str = "") -> str:
    return "sha256:" + f"{number:06x}{round_:06x}{salt:0>4}".ljust(64, "0")


class Writer:
    """One repository's streams as they grow: versions counted, tags remembered."""

    def __init__(self, number: int) -> None:
        self.stream = repository(number).name
        self.number = number
        self.version = 0
        self.runs = 0
        self.tags: dict[str, str] = {}

    def round(self, round_: int, at: datetime) -> Iterator[tuple[object, ...]]:
        """The rows of one round: the tag stream's nine events, then the run."""
        new = digest(self.number, round_)
        minor, patch = divmod(round_, 10)
        version = f"1.{minor}.{patch}"
        events: list[tuple[str, dict[str, object]]] = [self.set(version, new)]
        for tag in ("latest", "1", "edge", "nightly"):
            events.append(self.set(tag, new))
        events.append(self.set(f"build-{round_}", new))
        previous = f"build-{round_ - 1}"
        if previous in self.tags:
            events.append(("TagDisappeared", {"tag": previous, "digest": self.tags.pop(previous)}))
        else:
            events.append(self.set("stable", new))
        if round_ % 7 == 6 and round_ > 0:
            old = f"1.{(round_ - 3) // 10}.{(round_ - 3) % 10}"
            events.append(self.set(old, digest(self.number, round_, "re")))
        else:
            events.append(self.set("canary", digest(self.number, round_, "ca")))
        platforms = [
            {"os": "linux", "architecture": arch, "variant": None, "digest": digest(i, round_, a)}
            for i, (arch, a) in enumerate((("amd64", "a"), ("arm64", "b")))
        ]
        image = {
            "digest": new,
            "media_type": "application/vnd.oci.image.index.v1+json",
            "size": 743,
            "created": None,
            "platforms": platforms,
            "blobs": [],
        }
        events.append(("ImageInspected", image))
        stamp = _stamp(at)
        for kind, payload in events:
            self.version += 1
            yield (
                self.stream,
                self.version,
                kind,
                SCHEMA_VERSION[kind],
                json.dumps(payload),
                stamp,
                stamp,
            )
        self.runs += 1
        run = {
            "requests": 6,
            "duration_seconds": 0.12,
            "source": "watch",
            "daemon": "bench:1",
        }
        yield (
            self.stream + "#runs",
            self.runs,
            "PollSucceeded",
            SCHEMA_VERSION["PollSucceeded"],
            json.dumps(run),
            stamp,
            stamp,
        )

    def set(self, tag: str, new: str) -> tuple[str, dict[str, object]]:
        old = self.tags.get(tag)
        self.tags[tag] = new
        if old is None:
            return "TagAppeared", {"tag": tag, "digest": new, "platform": None}
        return "TagMoved", {
            "tag": tag,
            "old_digest": old,
            "new_digest": new,
            "platform": None,
            "platform_changed": None,
        }


def _stamp(moment: datetime) -> str:
    """How SQLAlchemy stores a `DateTime` in SQLite (UTC, no offset)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def build(path: Path, events: int, repositories: int) -> datetime:
    """The store at `path`, filled; the moment of its last round."""
    open_store(f"sqlite:///{path}").close()
    rounds = events // (repositories * PER_ROUND)
    writers = [Writer(n) for n in range(repositories)]
    spacing = ROUND / repositories
    started = time.perf_counter()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA synchronous = OFF")
        for round_ in range(rounds):
            at = START + round_ * ROUND
            rows = [
                row
                for writer in writers
                for row in writer.round(round_, at + writer.number * spacing)
            ]
            db.executemany(
                "INSERT INTO events (stream, version, kind, schema_version, payload,"
                " observed_at, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
    count = sqlite3.connect(path).execute("SELECT count(*) FROM events").fetchone()[0]
    log(f"built {count:,} events in {time.perf_counter() - started:.1f} s ({path})")
    return START + (rounds - 1) * ROUND


@dataclass(frozen=True)
class Figure:
    name: str
    seconds: list[float]
    target: float

    def row(self) -> str:
        median = statistics.median(self.seconds)
        met = "yes" if median <= self.target else "**no**"
        spread = f"{duration(min(self.seconds))}–{duration(max(self.seconds))}"
        return (
            f"| {self.name} | {duration(median)} | {spread} | ≤ {duration(self.target)} | {met} |"
        )


def in_process(url: str, chosen: list[Repository], at: datetime) -> list[Figure]:
    tag_history, answer_at = [], []
    with Service(store=url) as service:
        service.history(chosen[0])  # opens the store once, as a process does
        for repo in chosen:
            started = time.perf_counter()
            rows = [m for m in service.history(repo) if m.tag == "latest"]
            tag_history.append(time.perf_counter() - started)
            assert rows, repo
            started = time.perf_counter()
            found = pointing_at([m for m in service.history(repo) if m.tag == "latest"], at)
            answer_at.append(time.perf_counter() - started)
            assert "latest" in found, repo
    through_store = []
    with open_store(url) as store:
        for repo in chosen:
            started = time.perf_counter()
            rows = [m for m in movements(repo.name, store.load(repo.name)) if m.tag == "latest"]
            through_store.append(time.perf_counter() - started)
            assert rows, repo
    return [
        Figure("one tag's history, in the process", tag_history, IN_PROCESS_TARGET),
        Figure("an `--at` answer for one tag, in the process", answer_at, IN_PROCESS_TARGET),
        Figure(
            "one tag's history through `EventStore` (SQLAlchemy: PostgreSQL's path)",
            through_store,
            IN_PROCESS_TARGET,
        ),
    ]


def commands(url: str, chosen: list[Repository], at: datetime, logs: Path) -> list[Figure]:
    env = {k: v for k, v in os.environ.items() if k not in _NOT_IN_A_CONTAINER}
    script = Path(sys.executable).parent / "regwatch"  # the console script beside Python
    regwatch = [str(script)] if script.exists() else [sys.executable, "-m", "regwatch"]
    moment = at.isoformat().replace("+00:00", "Z")
    asked = {
        "`regwatch history REPO --tag latest` (whole command)": ["--tag", "latest"],
        "`regwatch history REPO --at T --tag latest` (whole command)": [
            "--at",
            moment,
            "--tag",
            "latest",
        ],
    }
    figures = []
    for name, extra in asked.items():
        seconds = []
        for number, repo in enumerate([chosen[0], chosen[0], *chosen]):
            argv = [*regwatch, "history", str(repo), "--store", url, "--format", "json", *extra]
            started = time.perf_counter()
            done = subprocess.run(
                [GNU_TIME, "-o", str(logs / "time.txt"), *argv],
                capture_output=True,
                env=env,
                check=False,
            )
            wall = time.perf_counter() - started
            assert done.returncode == 0, done.stderr.decode()
            assert json.loads(done.stdout), repo
            if number >= 2:  # two warm-up runs write the .pyc files
                seconds.append(wall)
        figures.append(Figure(name, seconds, COMMAND_TARGET))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repositories", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--keep", metavar="DIR", help="build (or reuse) the store in DIR")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-history-"))
    work.mkdir(parents=True, exist_ok=True)
    path = work / "history.db"
    try:
        if path.exists():
            log(f"reusing {path}")
            rounds = args.events // (args.repositories * PER_ROUND)
            last = START + (rounds - 1) * ROUND
        else:
            last = build(path, args.events, args.repositories)
        url = f"sqlite:///{path}"
        step = max(1, args.repositories // args.repeat)
        chosen = [repository(n) for n in range(0, args.repositories, step)][: args.repeat]
        at = START + (last - START) / 2
        figures = in_process(url, chosen, at) + commands(url, chosen, at, work)
        print("| what | median | range | target | met |")
        print("|---|---|---|---|---|")
        for figure in figures:
            print(figure.row())
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

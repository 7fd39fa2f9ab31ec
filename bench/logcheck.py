"""Many Concourse checks, one observation (issue 16): registry connections and wall time per check.

Run by hand from the repository root (needs docker-registry; PostgreSQL's binaries for the
PostgreSQL row, found as the test suite finds them):

    python -m bench.logcheck [--checks 1000] [--parallel 2] [--tags 50] [--baseline 50]
                             [--store sqlite|postgresql|both]

It starts a local docker-registry holding one repository of `--tags` semver tags plus
`latest`, puts a counting TCP forwarder (`tests/forwarder.py`) in front of it, and, for each
store, runs `--checks` `regwatch check` processes against a fresh store (a new SQLite file, a
new PostgreSQL database) with `max_age: 1h` and the cursor Concourse sends (the newest
version), `--parallel` at a time. The first check finds nothing in the log and polls; every
later one must give the same answer with no connection to the forwarder. `--baseline` checks
without `max_age` (each polls and records) give the wall time a check costs today. Prints a
markdown table for docs/benchmarks.md; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.measure import duration, log
from regwatch.refs import Repository
from tests import images
from tests.e2e.steps import client_for, step
from tests.forwarder import Forwarder
from tests.registries import RegistryServer, start_plain_registry

MAX_AGE = "1h"


@dataclass(frozen=True)
class Checked:
    seconds: float
    answer: Any


@dataclass(frozen=True)
class Row:
    store: str
    checks: int
    first_connections: int
    later_connections: int
    walls: list[float]
    total: float
    load: float

    def line(self) -> str:
        walls = sorted(self.walls)
        p95 = walls[max(0, int(len(walls) * 0.95) - 1)]
        return (
            f"| {self.store} | {self.checks} | {self.first_connections} | "
            f"{self.later_connections} | {duration(statistics.median(walls))} | "
            f"{duration(p95)} | {duration(walls[-1])} | {duration(self.total)} | "
            f"{self.load:.1f} |"
        )


def seed(server: RegistryServer, count: int) -> tuple[str, dict[str, str]]:
    """A repository of `count` versions 1.0.N plus `latest` on the newest: its path, and the
    cursor Concourse sends once it has seen them all."""
    repository = Repository(server.host, f"bench/logcheck-{uuid.uuid4().hex[:8]}")
    client = client_for(server)
    digest = ""
    for n in range(count):
        digest = images.push(client, repository, f"1.0.{n}", images.image(f"logcheck-{n}"))
    images.push(client, repository, "latest", images.image(f"logcheck-{count - 1}"))
    return repository.path, {"tag": f"1.0.{count - 1}", "digest": digest}


def check(source: dict[str, Any], cursor: dict[str, str]) -> Checked:
    started = time.perf_counter()
    done = step("check", {"source": source, "version": cursor})
    seconds = time.perf_counter() - started
    if done.code != 0:
        raise SystemExit(f"check failed: {done.stderr.strip()}")
    return Checked(seconds, done.answer)


def many(work: Callable[[int], Checked], count: int, parallel: int) -> list[Checked]:
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(work, range(count)))


def measure(
    name: str,
    store: str,
    forwarder: Forwarder,
    path: str,
    cursor: dict[str, str],
    args: argparse.Namespace,
) -> tuple[Row, list[float]]:
    source = {"repository": f"{forwarder.host}/{path}", "store": store}
    forwarder.take_count()
    load = os.getloadavg()[0]
    started = time.perf_counter()
    first = check({**source, "max_age": MAX_AGE}, cursor)
    first_connections = forwarder.take_count()
    rest = many(
        lambda _: check({**source, "max_age": MAX_AGE}, cursor), args.checks - 1, args.parallel
    )
    total = time.perf_counter() - started
    later_connections = forwarder.take_count()
    wrong = [c for c in rest if c.answer != first.answer]
    if wrong:
        raise SystemExit(f"{len(wrong)} answers from the log differ from the poll's")
    log(
        f"{name}: {args.checks} checks in {duration(total)}; "
        f"connections {first_connections}, then {later_connections}"
    )
    baseline = many(lambda _: check(source, cursor), args.baseline, args.parallel)
    if any(c.answer != first.answer for c in baseline):
        raise SystemExit("a polling check answered otherwise")
    walls = [first.seconds, *(c.seconds for c in rest)]
    row = Row(name, args.checks, first_connections, later_connections, walls, total, load)
    return row, [c.seconds for c in baseline]


@contextmanager
def stores(which: str, directory: Path) -> Iterator[list[tuple[str, str]]]:
    found = []
    if which in ("sqlite", "both"):
        found.append(("SQLite file", f"sqlite:///{directory / 'fleet.db'}"))
    cluster = None
    if which in ("postgresql", "both"):
        from tests.postgres import start_postgres  # noqa: PLC0415  # only for this row

        cluster = start_postgres()
        found.append(("PostgreSQL", cluster.fresh_url()))
    try:
        yield found
    finally:
        if cluster is not None:
            cluster.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--tags", type=int, default=50)
    parser.add_argument("--baseline", type=int, default=50)
    parser.add_argument("--store", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args(argv)
    registry_bin = shutil.which("docker-registry")
    if not registry_bin:
        raise SystemExit("needs docker-registry (scripts/test installs it)")
    with tempfile.TemporaryDirectory(prefix="regwatch-bench-") as tmp:
        server = start_plain_registry(registry_bin, Path(tmp))
        forwarder = Forwarder(int(server.host.rpartition(":")[2])).start()
        try:
            path, cursor = seed(server, args.tags)
            log(f"seeded {args.tags} tags + latest")
            rows, baselines = [], []
            with stores(args.store, Path(tmp)) as chosen:
                for name, url in chosen:
                    row, baseline = measure(name, url, forwarder, path, cursor, args)
                    rows.append(row)
                    baselines.append((name, baseline))
        finally:
            forwarder.stop()
            server.stop()
    print(
        "| store | checks | connections, first check | connections, the other checks "
        "| median wall | p95 | max | all checks | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(row.line())
    print()
    print("| store | polling checks (no `max_age`) | median wall | max |")
    print("|---|---|---|---|")
    for name, walls in baselines:
        if walls:
            print(
                f"| {name} | {len(walls)} | {duration(statistics.median(walls))} "
                f"| {duration(max(walls))} |"
            )


if __name__ == "__main__":
    main()

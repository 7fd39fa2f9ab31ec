"""Steady-poll benchmark: what a daemon's poll of a big repository costs when nothing changed.

Run by hand from the repository root (needs docker-registry):

    python -m bench.steadypoll [--tags 5000] [--latency-ms 15] [--repeat 3]

It starts a local docker-registry, seeds one repository with N semver tags (distinct manifests,
one manifest PUT each) plus `latest`, and polls it in this process with one `Service` and a
throw-away SQLite store, the clock injected 5 minutes later for every poll:

- the daemon's steady poll (`rescan: 24h`, the state known, nothing changed): one listing, the
  mutable `latest`, and the known versions whose turn in the rescan cycle came;
- the Go resource's algorithm (a Concourse check without a cursor): one listing and a HEAD for
  every version and `latest`.

Both on loopback and, with `--latency-ms`, through `bench.check`'s latency proxy. Requests are
the transport's count (every request sent, retries included). Prints a markdown table for
docs/benchmarks.md; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.check import REPOSITORY, LatencyProxy, seed
from bench.measure import duration, log
from regwatch.refs import Repository
from regwatch.rescan import Rescan
from regwatch.retrying import RetryPolicy
from regwatch.service import Service
from regwatch.specs import WatchSpec
from tests.registries import start_plain_registry

EVERY = timedelta(minutes=5)
RESCAN = timedelta(hours=24)
CONCURRENCY = 8


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 12, 7, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


@dataclass(frozen=True)
class Row:
    scenario: str
    path: str
    seconds: float
    requests: list[int]
    expected: list[int]


def measure(host: str, tags: list[str], repeat: int, path: str, store: Path) -> list[Row]:
    """A first poll to learn the repository, then `repeat` steady polls and `repeat` Go polls."""
    clock = Clock()
    repository = Repository(host, REPOSITORY)
    daemon = WatchSpec(repository, concurrency=CONCURRENCY, rescan=RESCAN)
    go = WatchSpec(repository, concurrency=CONCURRENCY)
    policy = RetryPolicy(wait_out_rate_limits=False)
    rows = []
    with Service(store=f"sqlite:///{store}", now=clock, retry=policy) as service:
        transport = service.clients.transport(daemon.access)
        started = time.perf_counter()
        service.poll(daemon)
        log(f"  {path}: first poll {time.perf_counter() - started:.1f} s")
        for scenario, spec in (("daemon steady poll", daemon), ("Go algorithm", go)):
            seconds, spent, expected = [], [], []
            for attempt in range(repeat):
                since = service.polled_at[(repository.name, daemon.selection)]
                clock.at += EVERY
                share = [t for t in tags if Rescan(RESCAN, clock.at, since).due(t)]
                expected.append(1 + 1 + len(share) if spec.rescan else 1 + len(tags) + 1)
                before = transport.requests_sent
                started = time.perf_counter()
                poll = service.poll(spec)
                seconds.append(time.perf_counter() - started)
                spent.append(transport.requests_sent - before)
                assert len(poll.state.tags) == len(tags) + 1
                log(
                    f"  {scenario}, {path}, run {attempt + 1}/{repeat}: "
                    f"{seconds[-1]:.2f} s, {spent[-1]} requests"
                )
            assert spent == expected, f"{scenario}: sent {spent}, expected {expected}"
            rows.append(Row(scenario, path, statistics.median(seconds), spent, expected))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tags", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    registry_bin = shutil.which("docker-registry")
    if not registry_bin:
        raise SystemExit("needs docker-registry (scripts/test installs it)")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="regwatch-bench-") as tmp:
        work = Path(tmp)
        (work / "registry").mkdir()
        server = start_plain_registry(registry_bin, work / "registry")
        try:
            started = time.perf_counter()
            tags = [version.tag for version in seed(server, args.tags)]
            log(f"seeding took {time.perf_counter() - started:.1f} s")
            rows += measure(server.host, tags, args.repeat, "loopback", work / "loopback.db")
            if args.latency_ms:
                port = int(server.host.rpartition(":")[2])
                proxy = LatencyProxy(("127.0.0.1", port), args.latency_ms / 1000).start()
                try:
                    path = f"proxy, +{args.latency_ms:g} ms each way"
                    host = f"127.0.0.1:{proxy.port}"
                    rows += measure(host, tags, args.repeat, path, work / "proxy.db")
                finally:
                    proxy.stop()
        finally:
            server.stop()
    print("| poll | path | median wall | requests per poll | expected |")
    print("|---|---|---|---|---|")
    for row in rows:
        requests = ", ".join(map(str, row.requests))
        expected = ", ".join(map(str, row.expected))
        print(
            f"| {row.scenario} | {row.path} | {duration(row.seconds)} | {requests} | {expected} |"
        )


if __name__ == "__main__":
    main()

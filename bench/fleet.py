"""Fleet benchmark: several `regwatch watch` daemons sharing one PostgreSQL, one killed, one new.

Run by hand from the repository root (needs docker-registry and Debian's postgresql):

    python -m bench.fleet [--minutes 10] [--watches 300] [--every 30] [--daemons 3]

It starts a local docker-registry and pushes small images into `--watches` repositories (as
`bench.daemon` does: tag mode, semver mode, a `tag_regex` and a pinned tag, in turn), a
throw-away PostgreSQL cluster, and `--daemons` daemons with one config (every `--every`
seconds, 10% jitter, 4 workers each). At 40% of the run the daemon holding the most watches is
SIGKILLed; at 70% a new daemon joins; at the end the others get SIGTERM.

Then it reads every successful run from the log and reports, per watch, the gaps between two
polls: **duplicate polls** (a gap under half the period: two daemons polled one turn),
**missed intervals** (a gap over 1.5 periods), the **failover time** (for the killed daemon's
watches, how long after their due time another daemon polled them), the newcomer's share, and
the CPU seconds of the daemons and of PostgreSQL (every server process, sampled from /proc
every few seconds; a backend's last CPU before it exits is the last sample). Prints a markdown
table for docs/benchmarks.md; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from bench.daemon import JITTER, regwatch_script, seed, write_config
from bench.measure import cpu_seconds, log
from tests.e2e.test_fleet import polls
from tests.postgres import PostgresCluster, require_postgres, start_cluster
from tests.registries import start_plain_registry

SAMPLE_SECONDS = 3.0


class CpuMeter:
    """The highest CPU time seen per process, for the daemons and for PostgreSQL's server."""

    def __init__(self, cluster: PostgresCluster) -> None:
        self._postmaster = int(
            (cluster.directory / "data" / "postmaster.pid").read_text().split()[0]
        )
        self.seen: dict[int, float] = {}
        self.daemons: dict[int, float] = {}

    def sample(self, daemon_pids: list[int]) -> None:
        for pid in self._server_pids():
            self._keep(self.seen, pid)
        for pid in daemon_pids:
            self._keep(self.daemons, pid)

    def _server_pids(self) -> list[int]:
        pids = [self._postmaster]
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self._postmaster:
                pids.append(int(entry.name))
        return pids

    @staticmethod
    def _keep(into: dict[int, float], pid: int) -> None:
        try:
            into[pid] = max(into.get(pid, 0.0), cpu_seconds(pid))
        except (OSError, IndexError, ValueError):
            return


def main() -> None:  # noqa: PLR0915 - one run, told in order
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--watches", type=int, default=300)
    parser.add_argument("--every", type=int, default=30)
    parser.add_argument("--daemons", type=int, default=3)
    args = parser.parse_args()
    registry_bin = shutil.which("docker-registry")
    if registry_bin is None:
        sys.exit("bench.fleet needs docker-registry")
    script = regwatch_script()
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as scratch:
        work = Path(scratch)
        (work / "registry").mkdir()
        registry = start_plain_registry(registry_bin, work / "registry")
        cluster = start_cluster(require_postgres())
        processes: list[subprocess.Popen[bytes]] = []
        try:
            log(f"pushing images into {args.watches} repositories")
            repositories = seed(registry, args.watches)
            config = work / "fleet.yaml"
            write_config(config, cluster.url, repositories, args.every)
            meter = CpuMeter(cluster)

            def start(name: str) -> subprocess.Popen[bytes]:
                with (work / f"{name}.log").open("wb") as sink:
                    process = subprocess.Popen(
                        [script, "watch", "--config", str(config)],
                        stdout=sink,
                        stderr=subprocess.STDOUT,
                    )
                processes.append(process)
                return process

            seconds = args.minutes * 60
            started = time.monotonic()
            for number in range(args.daemons):
                start(f"daemon-{number}")
            log(f"{args.daemons} daemons started; running {args.minutes:g} min")
            killed: tuple[str, datetime] | None = None
            joined: tuple[str, datetime] | None = None
            while (elapsed := time.monotonic() - started) < seconds:
                meter.sample([p.pid for p in processes if p.poll() is None])
                if killed is None and elapsed >= 0.4 * seconds:
                    share = Counter(pid for seen in polls(cluster.url).values() for _, pid in seen)
                    victim = max(
                        (p for p in processes if p.poll() is None), key=lambda p: share[str(p.pid)]
                    )
                    victim.send_signal(signal.SIGKILL)
                    victim.wait()
                    killed = (str(victim.pid), datetime.now().astimezone())
                    log(f"SIGKILLed daemon {victim.pid} at {elapsed:.0f} s")
                if joined is None and elapsed >= 0.7 * seconds:
                    newcomer = start("newcomer")
                    joined = (str(newcomer.pid), datetime.now().astimezone())
                    log(f"daemon {newcomer.pid} joined at {elapsed:.0f} s")
                time.sleep(SAMPLE_SECONDS)
            meter.sample([p.pid for p in processes if p.poll() is None])
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            codes = [process.wait(60) for process in processes if process.returncode != -9]
            log(f"stopped; exit codes {codes}")
            report(polls(cluster.url), args, meter, killed, joined)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
            cluster.stop()
            registry.stop()


def report(
    runs: dict[str, list[tuple[datetime, str]]],
    args: argparse.Namespace,
    meter: CpuMeter,
    killed: tuple[str, datetime] | None,
    joined: tuple[str, datetime] | None,
) -> None:
    every = timedelta(seconds=args.every)
    gaps = [
        (watch, earlier, later - earlier, pid_before, pid_after)
        for watch, seen in runs.items()
        for (earlier, pid_before), (later, pid_after) in itertools.pairwise(seen)
    ]
    duplicates = sum(1 for _, _, gap, _, _ in gaps if gap < every / 2)
    missed = sum(1 for _, _, gap, _, _ in gaps if gap > every * 1.5)
    total = sum(len(seen) for seen in runs.values())
    expected = args.watches * args.minutes * 60 / args.every
    failovers: list[float] = []
    if killed is not None:
        victim, at = killed
        for seen in runs.values():
            before = [when for when, pid in seen if when <= at and pid == victim]
            after = [when for when, pid in seen if when > at]
            if before and after and (not [w for w, _ in seen if before[-1] < w <= at]):
                due = max(before[-1] + every, at)
                failovers.append((after[0] - due).total_seconds())
    share = "n/a"
    if joined is not None:
        newcomer, at = joined
        later = [pid for seen in runs.values() for when, pid in seen if when > at]
        share = f"{later.count(newcomer) / max(1, len(later)):.0%} of {len(later)} polls"
    store_cpu = sum(meter.seen.values())
    daemon_cpu = sum(meter.daemons.values())
    wall = args.minutes * 60
    print(
        f"{args.daemons} daemons (+1 joining, 1 SIGKILLed) × {args.watches} watches every"
        f" {args.every} s ({JITTER} jitter), {args.minutes:g} min, load"
        f" {os.getloadavg()[0]:.1f}\n"
    )
    print("| measure | value |")
    print("|---|---|")
    print(f"| polls | {total} (one per watch per interval: {expected:.0f}) |")
    print(f"| duplicate polls (gap < ½ interval) | {duplicates} |")
    print(f"| missed intervals (gap > 1½ intervals) | {missed} |")
    if failovers:
        middle = statistics.median(failovers)
        print(
            f"| failover after the SIGKILL (past due) | median {middle:.1f} s,"
            f" max {max(failovers):.1f} s over {len(failovers)} watches |"
        )
    print(f"| newcomer's share after it joined | {share} |")
    print(f"| PostgreSQL CPU | {store_cpu:.1f} s ({store_cpu / wall:.1%} of one core) |")
    print(f"| daemons' CPU | {daemon_cpu:.1f} s ({daemon_cpu / wall:.1%} of one core) |")


if __name__ == "__main__":
    main()

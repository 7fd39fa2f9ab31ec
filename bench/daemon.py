"""Daemon soak benchmark: one `regwatch watch` with 200 watches, for half an hour, measured.

Run by hand from the repository root (needs docker-registry):

    python -m bench.daemon [--minutes 30] [--watches 200] [--every 2] [--sample 30]

It starts a local docker-registry and pushes three small images into each of `--watches`
repositories, under `1.0.0`, `1.1.0`, `2.0.0` and `latest` (the newest). It writes a config
with one watch per repository (so a repository's run stream is exactly one watch's polls),
their selections cycling through tag mode (`latest`), semver mode, a `tag_regex` and a
pinned `1.0.0`; every `--every` seconds with a 10% jitter, 4 workers, a SQLite store in a
temporary directory. Then it runs `regwatch watch --config FILE --listen 127.0.0.1:PORT` as a
child and, every `--sample` seconds, reads the child's RSS (`VmRSS`) and CPU time (utime +
stime) from /proc, the `regwatch_polls_total` and `regwatch_poll_duration_seconds` series of
`/metrics`, and `/healthz`'s status.

At the end it stops the daemon with SIGTERM (it must exit 0 within the 30 s grace) and reads
the store back: for each watch, no two runs' `[start, end]` intervals may overlap (a success's
`observed_at` is taken when its observation starts, a failure's when the poll ended; the run's
`duration_seconds` gives the other end), and each watch must have been polled about
`minutes * 60 / every` times (missed runs are coalesced under load: the minimum is reported).

Prints a markdown table (time, polls so far, CPU per poll over each interval, RSS) and a
verdict for docs/benchmarks.md; progress goes to stderr. Exits 1 when the verdict fails.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from bench.measure import cpu_seconds, log
from regwatch.events import RUN_STREAM_SUFFIX
from regwatch.net import Transport
from regwatch.refs import Repository
from regwatch.registry.client import RegistryClient
from tests import images
from tests.processes import free_port
from tests.registries import RegistryServer, start_plain_registry

WORKERS = 4
JITTER = "10%"
GRACE = 30.0
"""The daemon's grace after SIGTERM (decisions: 30 s); it must have exited by then."""
FLAT_MIB = 5.0
"""RSS that moves by less than this between the baseline and the end is flat."""
BASELINE = timedelta(minutes=5)
"""When RSS is first compared: after start-up, the first polls and the store's page cache."""
TAGS = ("1.0.0", "1.1.0", "2.0.0")
SELECTIONS: tuple[dict[str, str], ...] = (
    {"tag": "latest"},
    {"semver_constraint": ">=1"},
    {"tag_regex": r"^\d+\.\d+\.\d+$"},
    {"tag": "1.0.0"},
)
MIB = 1024


@dataclass(frozen=True)
class Sample:
    at: float
    """Seconds since the daemon started."""
    cpu: float
    rss_kib: int
    polls: int
    failed: int
    poll_seconds: float
    """The sum of `regwatch_poll_duration_seconds` so far."""
    health: int


# -- the registry and the config ------------------------------------------------------------------


def seed(server: RegistryServer, count: int) -> list[Repository]:
    """`count` repositories, each with three images under the semver tags and `latest`."""
    client = RegistryClient(server.host, Transport())
    pushed = [images.image(f"soak-{tag}") for tag in TAGS]
    repositories = [Repository(server.host, f"soak/r{index:03d}") for index in range(count)]
    for repository in repositories:
        for tag, item in zip(TAGS, pushed, strict=True):
            images.push(client, repository, tag, item)
        images.push(client, repository, "latest", pushed[-1])
    return repositories


def write_config(path: Path, store: str, repositories: list[Repository], every: int) -> None:
    """One watch per repository, its selection cycling through `SELECTIONS`, in `store`."""
    watches = [
        {"name": f"w{index:03d}", "source": {"repository": str(repository), **selection}}
        for index, repository in enumerate(repositories)
        for selection in [SELECTIONS[index % len(SELECTIONS)]]
    ]
    config = {
        "store": store,
        "workers": WORKERS,
        "defaults": {"every": f"{every}s", "jitter": JITTER},
        "watches": watches,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


# -- sampling -------------------------------------------------------------------------------------


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise SystemExit(f"no {field} in /proc/{pid}/status")


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def sample(pid: int, listen: str, started: float) -> Sample:
    health, _ = fetch(f"http://{listen}/healthz")
    _, text = fetch(f"http://{listen}/metrics")
    polls = failed = 0
    poll_seconds = 0.0
    for family in text_string_to_metric_families(text):
        for series in family.samples:
            if series.name == "regwatch_polls_total":
                polls += int(series.value)
                failed += int(series.value) if series.labels.get("result") != "ok" else 0
            elif series.name == "regwatch_poll_duration_seconds_sum":
                poll_seconds += series.value
    return Sample(
        at=time.monotonic() - started,
        cpu=cpu_seconds(pid),
        rss_kib=rss_kib(pid),
        polls=polls,
        failed=failed,
        poll_seconds=poll_seconds,
        health=health,
    )


def wait_until_listening(listen: str, process: subprocess.Popen[bytes], logs: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the daemon exited with {process.returncode}:\n{tail(logs)}")
        try:
            if fetch(f"http://{listen}/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the daemon did not answer /healthz within 60 s:\n{tail(logs)}")


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# -- the store, read back -------------------------------------------------------------------------


@dataclass(frozen=True)
class Runs:
    per_watch: dict[str, int]
    overlaps: int
    failures: int


def intervals(database: Path) -> Iterator[tuple[str, float, float, str]]:
    """(stream, start, end, kind) of every recorded run, in epoch seconds."""
    with sqlite3.connect(database) as db:
        found = db.execute(
            "SELECT stream, observed_at, kind, payload FROM events WHERE stream LIKE ?",
            (f"%{RUN_STREAM_SUFFIX}",),
        )
        for stream, observed, kind, payload in found:
            at = datetime.fromisoformat(observed).timestamp()
            seconds = float(json.loads(payload)["duration_seconds"])
            if kind == "PollSucceeded":
                yield stream, at, at + seconds, kind
            else:
                yield stream, at - seconds, at, kind


def read_runs(database: Path) -> Runs:
    by_stream: dict[str, list[tuple[float, float]]] = defaultdict(list)
    failures = 0
    for stream, start, end, kind in intervals(database):
        by_stream[stream].append((start, end))
        failures += kind != "PollSucceeded"
    overlaps = 0
    for runs in by_stream.values():
        runs.sort()
        overlaps += sum(1 for a, b in itertools.pairwise(runs) if b[0] < a[1])
    return Runs({s: len(r) for s, r in by_stream.items()}, overlaps, failures)


# -- the run ---------------------------------------------------------------------------------


def soak(work: Path, args: argparse.Namespace, registry_bin: str) -> int:
    (work / "registry").mkdir()
    server = start_plain_registry(registry_bin, work / "registry")
    try:
        started = time.perf_counter()
        repositories = seed(server, args.watches)
        log(f"seeded {len(repositories)} repositories in {time.perf_counter() - started:.1f} s")
        store, config = work / "soak.db", work / "config.yaml"
        write_config(config, f"sqlite:///{store}", repositories, args.every)
        return measure(work, config, store, len(repositories), args)
    finally:
        server.stop()


def measure(work: Path, config: Path, store: Path, watches: int, args: argparse.Namespace) -> int:
    listen = f"127.0.0.1:{free_port()}"
    logs = work / "daemon.log"
    command = [regwatch_script(), "watch", "--config", str(config), "--listen", listen]
    with logs.open("wb") as err:
        process = subprocess.Popen(command, stdout=err, stderr=subprocess.STDOUT)
    started = time.monotonic()
    try:
        wait_until_listening(listen, process, logs)
        samples = [sample(process.pid, listen, started)]
        end = started + args.minutes * 60
        while time.monotonic() < end:
            time.sleep(max(0.0, min(args.sample, end - time.monotonic())))
            if process.poll() is not None:
                raise SystemExit(f"the daemon died with {process.returncode}:\n{tail(logs)}")
            samples.append(sample(process.pid, listen, started))
            last = samples[-1]
            log(
                f"  {last.at / 60:5.1f} min: {last.polls} polls, "
                f"{last.rss_kib / MIB:.1f} MiB, healthz {last.health}"
            )
        peak_kib = rss_kib(process.pid, "VmHWM")
        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            code: int | None = process.wait(timeout=GRACE + 10)
        except subprocess.TimeoutExpired:
            code = None
        stopped_in = time.monotonic() - stopping
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    runs = read_runs(store)
    print(report(samples, peak_kib, runs, watches, args, code, stopped_in, logs))
    return 0 if passed(samples, runs, watches, args, code, stopped_in) else 1


def regwatch_script() -> str:
    script = shutil.which("regwatch")
    return script or str(Path(sys.executable).with_name("regwatch"))


def baseline(samples: list[Sample], minutes: float) -> Sample:
    """The first sample at or after 5 minutes (a sixth of a shorter run)."""
    after = min(BASELINE.total_seconds(), minutes * 60 / 6)
    return next((s for s in samples if s.at >= after), samples[-1])


def expected_polls(args: argparse.Namespace) -> float:
    return float(args.minutes * 60 / args.every)


def passed(
    samples: list[Sample],
    runs: Runs,
    watches: int,
    args: argparse.Namespace,
    code: int | None,
    stopped_in: float,
) -> bool:
    growth = samples[-1].rss_kib - baseline(samples, args.minutes).rss_kib
    return (
        runs.overlaps == 0
        and growth / MIB <= FLAT_MIB
        and code == 0
        and stopped_in <= GRACE
        and len(runs.per_watch) == watches
        and all(s.health == 200 for s in samples)
    )


def report(
    samples: list[Sample],
    peak_kib: int,
    runs: Runs,
    watches: int,
    args: argparse.Namespace,
    code: int | None,
    stopped_in: float,
    logs: Path,
) -> str:
    lines = [
        "| time | polls so far | polls in interval | CPU per poll | mean poll wall | RSS |",
        "|---|---|---|---|---|---|",
    ]
    for before, now in itertools.pairwise(samples):
        polls = now.polls - before.polls
        cpu = (now.cpu - before.cpu) / polls * 1000 if polls else 0.0
        wall = (now.poll_seconds - before.poll_seconds) / polls * 1000 if polls else 0.0
        lines.append(
            f"| {now.at / 60:.1f} min | {now.polls} | {polls} | {cpu:.1f} ms | {wall:.0f} ms "
            f"| {now.rss_kib / MIB:.1f} MiB |"
        )
    first, last = baseline(samples, args.minutes), samples[-1]
    steady = last.polls - first.polls
    counts = sorted(runs.per_watch.values())
    spread = args.every * float(JITTER.rstrip("%")) / 100
    jitter = f"{spread:g} s" if spread >= 1 else "none: the daemon's jitter is whole seconds"
    skipped = logs.read_text(errors="replace").count("maximum number of running instances reached")
    verdict = [
        "",
        f"- watches: {watches} ({len(runs.per_watch)} with runs in the store), every "
        f"{args.every} s, jitter {JITTER} ({jitter}), {WORKERS} workers, {args.minutes:g} min",
        f"- polls: {last.polls} ({last.failed} not ok); per watch min {counts[0]}, median "
        f"{statistics.median(counts):g}, max {counts[-1]} (the schedule alone: "
        f"{expected_polls(args):.0f}); scheduler skips logged: {skipped}",
        f"- CPU per poll from {first.at / 60:.1f} min to the end: "
        f"{(last.cpu - first.cpu) / steady * 1000 if steady else 0.0:.1f} ms "
        f"(whole run: {last.cpu / last.polls * 1000 if last.polls else 0.0:.1f} ms, "
        f"{last.cpu:.0f} s CPU in {last.at / 60:.1f} min)",
        f"- RSS at {first.at / 60:.1f} min {first.rss_kib / MIB:.1f} MiB, at the end "
        f"{last.rss_kib / MIB:.1f} MiB: growth {(last.rss_kib - first.rss_kib) / MIB:+.1f} MiB "
        f"(flat: within {FLAT_MIB:g} MiB); peak (VmHWM) {peak_kib / MIB:.1f} MiB",
        f"- overlapping runs of one watch: {runs.overlaps} (must be 0) among {sum(counts)} runs in "
        f"the store; failed runs recorded: {runs.failures}",
        f"- /healthz: {sorted({s.health for s in samples})}; SIGTERM: exit {code} in "
        f"{stopped_in:.1f} s (grace {GRACE:g} s)",
    ]
    return "\n".join(lines + verdict)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--watches", type=int, default=200)
    parser.add_argument("--every", type=int, default=2, help="seconds between polls of a watch")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between samples")
    args = parser.parse_args()
    registry_bin = shutil.which("docker-registry")
    if not registry_bin:
        raise SystemExit("needs docker-registry (scripts/test installs it)")
    log(f"load average at start: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="regwatch-soak-") as tmp:
        code = soak(Path(tmp), args, registry_bin)
    log(f"load average at the end: {os.getloadavg()}")
    raise SystemExit(code)


if __name__ == "__main__":
    main()

"""Start-up benchmark: what one small `regwatch` step costs, against `skopeo inspect`.

Run by hand from the repository root (needs docker-registry, skopeo and GNU time):

    python -m bench.startup [--repeat 20] [--before DIR]

It starts a local docker-registry (plain HTTP on loopback), pushes one small image (one layer,
a few bytes) with regwatch's client, and then times, `--repeat` times each and interleaved, as
a child process:

- `regwatch check` in tag mode, driven as Concourse drives it (JSON on stdin, with the cursor
  a previous check returned): one HEAD for the tag after the HTTPS probe and the ping;
- `regwatch digest REF`: the same HEAD from the command line;
- `skopeo inspect --no-tags --tls-verify=false docker://REF`, the peer: it fetches the
  manifest and the config;
- `python -c pass` with the interpreter regwatch runs on: the floor no Python tool goes under;
- with `--before DIR`, `check` and `digest` again with DIR first on `PYTHONPATH` (an older
  regwatch unpacked there), in the same rounds, so "before" and "after" meet the same load.

The children run with bytecode caching on (`PYTHONDONTWRITEBYTECODE` dropped from their
environment): an installed regwatch has its `.pyc` files, and without them every start compiles
regwatch's own modules again (~0.1 s here). The warm-up rounds write them. The children do not
inherit `REQUESTS_CA_BUNDLE` or `CURL_CA_BUNDLE` either, which these machines' shells point at
a bundle file and a resource container does not: a bundle the environment names is honoured,
and loading a whole file into each TLS context costs ~40 ms where the system's hashed directory
is read as a handshake needs it.

Wall time runs from spawn to exit; peak RSS is GNU time's `%M` (see `run_child` for why not
`wait4`'s). Each answer is checked against the pushed image's digest. Prints a markdown table
for docs/benchmarks.md (median wall, CPU and RSS over the runs, and the highest peak RSS);
progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bench.measure import GNU_TIME, Measured, duration, log, run_child
from regwatch.net import Transport
from regwatch.refs import Repository
from regwatch.registry.client import RegistryClient
from tests.images import image, push
from tests.registries import RegistryServer, start_plain_registry

REPOSITORY = "bench/startup"
_NOT_IN_A_CONTAINER = frozenset({"PYTHONDONTWRITEBYTECODE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"})
"""Variables a development shell sets that a resource container does not (see the docstring)."""
TAG = "bench"
MIB = 1024


@dataclass(frozen=True)
class Target:
    """What each row is held to (the issue's budget); None where there is none."""

    wall: float | None = None
    rss_mib: float | None = None


@dataclass(frozen=True)
class Sample:
    wall: float
    measured: Measured


@dataclass
class Row:
    name: str
    target: Target
    samples: list[Sample]

    @property
    def wall(self) -> float:
        return statistics.median(s.wall for s in self.samples)

    @property
    def cpu(self) -> float:
        return statistics.median(s.measured.cpu for s in self.samples)

    @property
    def rss_mib(self) -> float:
        return statistics.median(s.measured.rss_kib for s in self.samples) / MIB

    @property
    def peak_mib(self) -> float:
        return max(s.measured.rss_kib for s in self.samples) / MIB

    def verdict(self) -> str:
        """Whether the median wall and the highest peak keep to the target."""
        checks = []
        if self.target.wall is not None:
            checks.append(self.wall <= self.target.wall)
        if self.target.rss_mib is not None:
            checks.append(self.peak_mib <= self.target.rss_mib)
        if not checks:
            return "—"
        return "yes" if all(checks) else "no"

    def budget(self) -> str:
        parts = []
        if self.target.wall is not None:
            parts.append(f"≤ {duration(self.target.wall)}")
        if self.target.rss_mib is not None:
            parts.append(f"≤ {self.target.rss_mib:.0f} MiB")
        return ", ".join(parts) or "—"


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| command | median wall | median CPU (user + sys) | median RSS | highest peak RSS "
        "| target | met | runs (wall) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        runs = ", ".join(f"{s.wall:.2f}" for s in row.samples)
        lines.append(
            f"| {row.name} | {duration(row.wall)} | {duration(row.cpu)} | {row.rss_mib:.0f} MiB "
            f"| {row.peak_mib:.0f} MiB | {row.budget()} | {row.verdict()} | {runs} s |"
        )
    return "\n".join(lines)


class Bench:
    """The commands, each run as a child and checked against the pushed digest."""

    def __init__(self, server: RegistryServer, digest: str, work: Path, time_bin: str) -> None:
        self._reference = f"{server.host}/{REPOSITORY}:{TAG}"
        self._repository = f"{server.host}/{REPOSITORY}"
        self._digest = digest
        self._work = work
        self._time_bin = time_bin
        self._runs = 0
        self._env = {k: v for k, v in os.environ.items() if k not in _NOT_IN_A_CONTAINER}
        here = Path(sys.executable).parent
        script = here / "regwatch"
        self._regwatch = [str(script)] if script.exists() else [sys.executable, "-m", "regwatch"]

    def check(self, code: str | None = None) -> Sample:
        request = {
            "source": {"repository": self._repository, "tag": TAG},
            "version": {"tag": TAG, "digest": self._digest},
        }
        sample = self._timed([*self._regwatch, "check"], json.dumps(request).encode(), code)
        answer = json.loads(sample.measured.stdout)
        assert answer == [{"tag": TAG, "digest": self._digest}], answer
        return sample

    def digest(self, code: str | None = None) -> Sample:
        sample = self._timed([*self._regwatch, "digest", self._reference], code=code)
        assert sample.measured.stdout.decode().strip() == self._digest, sample.measured.stdout
        return sample

    def skopeo(self) -> Sample:
        args = ["skopeo", "inspect", "--no-tags", "--tls-verify=false"]
        sample = self._timed([*args, f"docker://{self._reference}"])
        answer = json.loads(sample.measured.stdout)
        assert answer["Digest"] == self._digest, answer["Digest"]
        return sample

    def python(self) -> Sample:
        return self._timed([sys.executable, "-c", "pass"])

    def _timed(self, args: Sequence[str], stdin: bytes = b"", code: str | None = None) -> Sample:
        """`code`: a directory holding another regwatch to run instead (first on PYTHONPATH)."""
        self._runs += 1
        logs = self._work / f"{self._runs:04d}"
        started = time.perf_counter()
        env = self._env if code is None else {**self._env, "PYTHONPATH": code}
        measured = run_child(args, logs, stdin=stdin, env=env, time_bin=self._time_bin)
        return Sample(time.perf_counter() - started, measured)


def push_image(server: RegistryServer) -> str:
    client = RegistryClient(server.host, Transport())
    return push(client, Repository(server.host, REPOSITORY), TAG, image("startup"))


def run(bench: Bench, repeat: int, before: str | None = None) -> list[Row]:
    commands: list[tuple[Row, Callable[[], Sample]]] = [
        (Row("regwatch check (tag mode)", Target(0.25, 45), []), bench.check),
        (Row("regwatch digest", Target(0.20), []), bench.digest),
    ]
    if before is not None:
        commands += [
            (Row("regwatch check (tag mode), before", Target(), []), partial(bench.check, before)),
            (Row("regwatch digest, before", Target(), []), partial(bench.digest, before)),
        ]
    commands += [
        (Row("skopeo inspect --no-tags", Target(), []), bench.skopeo),
        (Row("python -c pass", Target(), []), bench.python),
    ]
    for _warm_up in range(2):  # page cache and the registry's first answers
        for _, command in commands:
            command()
    for attempt in range(1, repeat + 1):
        for row, command in commands:
            row.samples.append(command())
        walls = ", ".join(f"{row.name} {duration(row.samples[-1].wall)}" for row, _ in commands)
        log(f"run {attempt}: {walls}")
    return [row for row, _ in commands]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument(
        "--before",
        metavar="DIR",
        help="also run the regwatch in DIR (e.g. a `git archive` of an older commit), "
        "interleaved with this one, so both meet the same load",
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    tools = {name: shutil.which(name) for name in ("docker-registry", "skopeo")}
    tools[GNU_TIME] = GNU_TIME if os.access(GNU_TIME, os.X_OK) else None
    if not all(tools.values()):
        missing = ", ".join(name for name, path in tools.items() if not path)
        raise SystemExit(f"needs {missing} (GNU time is Debian's package time)")
    log(f"load average at the start: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="regwatch-bench-startup-") as tmp:
        work = Path(tmp)
        (work / "registry").mkdir()
        (work / "runs").mkdir()
        server = start_plain_registry(str(tools["docker-registry"]), work / "registry")
        try:
            digest = push_image(server)
            log(f"pushed {server.host}/{REPOSITORY}:{TAG} as {digest}")
            bench = Bench(server, digest, work / "runs", GNU_TIME)
            rows = run(bench, args.repeat, args.before)
        finally:
            server.stop()
    log(f"load average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"Median of {args.repeat} interleaved runs (after 2 warm-up rounds).\n")
    print(table(rows))


if __name__ == "__main__":
    main()

"""What every benchmark measures a command with: wall, CPU and peak RSS of one child process."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

GNU_TIME = "/usr/bin/time"
"""GNU time (Debian package `time`), whose `%M` is the only honest peak RSS of a child here."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def duration(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Measured:
    user: float
    sys: float
    rss_kib: int
    stdout: bytes = field(repr=False)

    @property
    def cpu(self) -> float:
        return self.user + self.sys


def run_child(
    args: Sequence[str],
    logs: Path,
    *,
    stdin: bytes = b"",
    env: Mapping[str, str] | None = None,
    time_bin: str = GNU_TIME,
) -> Measured:
    """Run one command to its end and measure it; a failure ends the benchmark with its stderr.

    CPU comes from `wait4` on GNU time, which has waited for the command: the command's own CPU
    (and its children's), not the benchmark's. Peak RSS comes from GNU time's `%M`, not from
    that `wait4`: Python starts children with vfork, and exec keeps the old address space's
    high-water mark, so a child's own `ru_maxrss` never reads below the benchmark process's
    peak (`true` started from a process that had touched 200 MiB read 213 MiB). GNU time forks
    the command from its own small address space, so its `%M` is the command's.

    stdout and stderr go to files, so nothing can fill a pipe; stdin is small enough for the
    pipe's buffer, so it is written and closed before waiting.
    """
    out_path, err_path = logs.with_suffix(".out"), logs.with_suffix(".err")
    rss_path = logs.with_suffix(".rss")
    timed = [time_bin, "--format=%M", f"--output={rss_path}", "--", *args]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(
            timed,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
            env=dict(env) if env is not None else None,
        )
        assert process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            process.stdin.write(stdin)
            process.stdin.close()
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = err_path.read_text(errors="replace")[-2000:]
        raise SystemExit(f"{' '.join(args[:4])} … exited with {process.returncode}:\n{tail}")
    rss_kib = int(rss_path.read_text().split()[-1])
    return Measured(usage.ru_utime, usage.ru_stime, rss_kib, out_path.read_bytes())

"""Server processes the tests start: each on a free 127.0.0.1 port, logging to a file, and
never left running, even when the session dies before fixture teardown."""

from __future__ import annotations

import atexit
import socket
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

START_ATTEMPTS = 3
STOP_GRACE_SECONDS = 5.0

_LIVE: set[subprocess.Popen[bytes]] = set()


def free_port() -> int:
    """A port that was free a moment ago; the small race is handled by retrying the start."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = 40) -> str:
    """The end of a server's log, for failure messages."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill; safe to call twice."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    _LIVE.discard(process)


def start_on_free_port(
    what: str,
    workdir: Path,
    log_path: Path,
    command: Callable[[int], Sequence[str]],
    ready: Callable[[subprocess.Popen[bytes], int], bool],
) -> tuple[subprocess.Popen[bytes], int]:
    """Start `command(port)` and wait until `ready`; another port when something else took it.

    `ready` returns False when the process gave up (it exited, or never answered).
    """
    for _attempt in range(START_ATTEMPTS):
        port = free_port()
        argv = list(command(port))
        with log_path.open("ab") as log:
            # The child keeps its own copy of the descriptor; ours is closed right away.
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=workdir
            )
        _LIVE.add(process)
        if ready(process, port) and process.poll() is None:
            return process, port
        stop_process(process)
        if "address already in use" not in log_tail(log_path, 5):
            break
    pytest.fail(f"{what} did not start; log tail:\n{log_tail(log_path)}")


@atexit.register
def _stop_leftovers() -> None:
    for process in list(_LIVE):
        stop_process(process)

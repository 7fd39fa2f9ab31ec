"""Running a piece of a test as an ordinary user, where file modes hold (root ignores them).

The suite runs as root in CI, and the interpreter lives where `nobody` may not read it, so a
subprocess as `nobody` could not even start Python: instead the test forks and the child drops
to `nobody` before calling the function. Run as another user already, the function just runs.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from regwatch.image.removal import remove_tree

NOBODY = 65534


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    """A fresh directory the unprivileged user owns (pytest's own are closed to others)."""
    directory = Path(tempfile.mkdtemp(prefix="regwatch-nobody-"))
    try:
        if os.geteuid() == 0:
            directory.chmod(0o755)
            os.chown(directory, NOBODY, NOBODY)
        yield directory
    finally:
        remove_tree(str(directory))


def run_unprivileged(function: Callable[[], object]) -> str | None:
    """Call `function` as `nobody`; None when it returned, else its exception in one line."""
    if os.geteuid() != 0:
        try:
            function()
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 0
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            function()
        except BaseException as exc:
            try:
                os.write(write, f"{type(exc).__name__}: {exc}".encode(errors="replace"))
            except BaseException:
                status = 1
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        message = answer.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the unprivileged child failed"
    return message or None

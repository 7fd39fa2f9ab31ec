"""How a Concourse step ends on Ctrl-C (SIGINT): soon, with one line, and without leftovers.

The first SIGINT raises `KeyboardInterrupt`, so the step unwinds and its own clean-up runs.
Unwinding can wait on a worker thread blocked in a request to a silent server, for as long as
that request's timeout; so a second SIGINT, or `GRACE` seconds without the process ending,
ends it at once: `undo` removes what the step wrote, the line is written, and the exit status
is 130. A database transaction left open dies with its connection.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Final, TextIO

from regwatch.frontends.output import write_line
from regwatch.service import remove_tree

GRACE: Final = 5.0
"""Seconds an interrupted step may take to unwind before it is ended outright."""

EXIT_STATUS: Final = 130
MESSAGE: Final = "error: interrupted"


class Interruption:
    """The step's SIGINT policy while `handling()` is active; `report()` ends the normal way."""

    def __init__(self, stderr: TextIO, undo: Callable[[], None]) -> None:
        self._stderr = stderr
        self._undo = undo
        self._lock = threading.RLock()  # a second SIGINT may arrive inside report()
        self._reported = False
        self._interrupted = False

    @contextmanager
    def handling(self) -> Iterator[None]:
        """Install the policy; a SIGINT that was ignored when we started stays ignored."""
        previous = signal.getsignal(signal.SIGINT)
        installed = previous is not signal.SIG_IGN and _on_main_thread()
        if installed:
            signal.signal(signal.SIGINT, self._on_signal)
        try:
            yield
        finally:
            if installed:
                signal.signal(signal.SIGINT, previous)

    def report(self) -> int:
        """The step unwound from an interrupt: undo, write the line once; the exit status."""
        self._undo()
        with self._lock:
            if not self._reported:
                self._reported = True
                write_line(self._stderr, MESSAGE)
        return EXIT_STATUS

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        del signum, frame
        if self._interrupted:
            self._end_now()
        self._interrupted = True
        timer = threading.Timer(GRACE, self._end_now)
        timer.daemon = True
        timer.start()
        raise KeyboardInterrupt

    def _end_now(self) -> None:
        self.report()
        os._exit(EXIT_STATUS)


def _on_main_thread() -> bool:
    """Only the main thread may set a signal handler."""
    return threading.current_thread() is threading.main_thread()


def new_entries_remover(directory: Path) -> Callable[[], None]:
    """An `undo` that removes what appears in `directory` from now on (all of it if new)."""
    existed = directory.exists() or directory.is_symlink()
    if existed and not directory.is_dir():
        return lambda: None  # the step fails on it without writing anything
    try:
        before = set(os.listdir(directory)) if existed else set()
    except OSError:
        return lambda: None  # unreadable: the step fails on it too

    def undo() -> None:
        if not existed:
            _remove(directory)
            return
        try:
            names = set(os.listdir(directory)) - before
        except OSError:
            return
        for name in names:
            _remove(directory / name)

    return undo


def _remove(path: Path) -> None:
    """Best effort: the step is ending either way, and says so."""
    with contextlib.suppress(OSError):
        remove_tree(str(path))

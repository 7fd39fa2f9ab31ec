"""Layer download progress on stderr: bars on a terminal, one plain line per layer otherwise."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.progress import TaskID

    from regwatch.service import Descriptor


def progress_for(stream: TextIO) -> TerminalProgress | LineProgress:
    return TerminalProgress(stream) if stream.isatty() else LineProgress(stream)


def human(size: float) -> str:
    """Binary units with one decimal, as the Go resource prints them (`1.5MiB`)."""
    units = ("B", "KiB", "MiB", "GiB")
    power = 0
    while size >= 1024 and power < len(units) - 1:
        size /= 1024
        power += 1
    return f"{int(size)}B" if power == 0 else f"{size:.1f}{units[power]}"


def label(digest: str) -> str:
    return digest.partition(":")[2][:12]


class TerminalProgress:
    """One bar per layer, created up front, labelled with the layer digest's first 12 hex."""

    def __init__(self, stream: TextIO) -> None:
        # Imported here: rich costs ~50 ms and 4 MiB of start-up, and only a terminal needs it.
        from rich.console import Console  # noqa: PLC0415
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn  # noqa: PLC0415

        self._progress = Progress(
            TextColumn("[grey50]{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            console=Console(file=stream),
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def begin(self, layers: Sequence[Descriptor]) -> None:
        for layer in layers:
            if layer.digest not in self._tasks:
                self._tasks[layer.digest] = self._progress.add_task(
                    label(layer.digest), total=layer.size
                )
        if layers:
            self._progress.start()

    def advance(self, digest: str, amount: int) -> None:
        self._progress.advance(self._tasks[digest], amount)

    def finish(self, digest: str) -> None:
        task = self._tasks[digest]
        self._progress.update(task, completed=self._progress.tasks[task].total)
        if all(t.finished for t in self._progress.tasks):
            self._progress.stop()


class LineProgress:
    """A line per finished layer: what a CI log can show without escape codes."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._done: dict[str, int] = {}
        self._total: dict[str, int] = {}
        self._lock = threading.Lock()

    def begin(self, layers: Sequence[Descriptor]) -> None:
        for layer in layers:
            self._total[layer.digest] = layer.size
            self._done.setdefault(layer.digest, 0)

    def advance(self, digest: str, amount: int) -> None:
        with self._lock:
            self._done[digest] = self._done.get(digest, 0) + amount

    def finish(self, digest: str) -> None:
        with self._lock:
            done, total = self._done.get(digest, 0), self._total.get(digest, 0)
            print(f"{label(digest)} {human(done)}/{human(total)}", file=self._stream, flush=True)

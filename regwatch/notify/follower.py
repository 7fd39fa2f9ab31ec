"""A sink's follower: reads the log after its checkpoint and delivers, at least once, in order.

The checkpoint (`sink:<name>`) moves only after the sink accepted, by compare-and-set, so two
followers of one sink can never both advance it; a follower that loses the race reloads it. A
crash between a delivery and its checkpoint delivers that event again, with the same id.

A watch's first poll appends its run before its tag events; the follower announces the run as
one `initial` notice and skips the tag events it summarises, saving no checkpoint until it has
passed them (a restart inside that range would deliver them one by one).

Delivery never blocks polling: each follower runs on a thread of its own, woken after each
recorded poll and on a timer, and backs off (doubling, capped) while its sink fails.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from regwatch.errors import Conflict, RegwatchError
from regwatch.notify.notices import Notice, Notices
from regwatch.notify.settings import SinkSettings
from regwatch.notify.sinks import Sink
from regwatch.store.eventstore import EventStore, StoredEvent

log = logging.getLogger("regwatch.notify")

PAGE: Final = 200
"""Events read per page of the log."""
IDLE_WAKE: Final = 30.0
"""Seconds an idle follower sleeps before looking again without being woken."""


@dataclass(frozen=True)
class Backoff:
    """Seconds between attempts while a sink fails: `first`, doubling up to `cap`."""

    first: float = 1.0
    cap: float = 60.0

    def delay(self, failures: int) -> float:
        return min(self.cap, self.first * 2.0 ** max(0, failures - 1))


class Follower:
    """One sink's reader of the log; `drain` delivers what is pending, `run` loops on it."""

    def __init__(
        self,
        settings: SinkSettings,
        store: EventStore,
        sink: Sink,
        *,
        backoff: Backoff | None = None,
        on_delivery: Callable[[str, bool], None] | None = None,
        on_lag: Callable[[str, int], None] | None = None,
        may_deliver: Callable[[], bool] | None = None,
    ) -> None:
        self.settings = settings
        self._may_deliver = may_deliver or (lambda: True)
        """False while another daemon of the fleet follows this sink."""
        self._store = store
        self._sink = sink
        self._notices = Notices(store)
        self._backoff = backoff or Backoff()
        self._on_delivery = on_delivery or (lambda _name, _ok: None)
        self._on_lag = on_lag or (lambda _name, _lag: None)
        self._wake = threading.Event()
        self._stop = threading.Event()
        """Set by `run`'s caller: a drain stops between two events."""
        self._saved: int | None = None
        self._read = 0
        self._skipping: dict[str, tuple[int, int]] = {}
        """Stream → (position of the initial run, last version to skip) while passing it."""
        self.failures = 0

    @property
    def name(self) -> str:
        return self.settings.name

    def start_at(self, position: int) -> int:
        """A sink without a checkpoint starts at `position` (the log's end as the daemon
        starts): it is not flooded with the store's past. Its checkpoint, either way."""
        return self._store.start_checkpoint(self.settings.checkpoint, position)

    def pending(self) -> int:
        """Events of the log after the checkpoint (whether or not they pass the filters)."""
        return self._store.count_after(self._store.checkpoint(self.settings.checkpoint))

    def drain(self) -> bool:
        """Deliver what is pending, in log order; True when caught up, False when the sink
        failed (the failed notice stays pending; the next call starts with it)."""
        if self._saved is None:
            self._restart()
        try:
            while True:
                page = self._store.read_all(self._read, PAGE)
                for event in page:
                    if self._stop.is_set():
                        self._save(self._read)
                        return False
                    if not self._may_deliver():
                        self.resync()
                        return False
                    self._follow(event)
                if len(page) < PAGE:
                    self._save(self._read)
                    self.failures = 0
                    return True
        except _Failed:
            self.failures += 1
            return False
        except Conflict as exc:
            log.warning("notify: sink %s: %s; following from the checkpoint saved", self.name, exc)
            self._restart()
            return False
        finally:
            self._report_lag()

    def drain_until(self, deadline: float, sleep: Callable[[float], None] = time.sleep) -> bool:
        """`drain`, backing off after failures, until caught up or `deadline` (monotonic)."""
        while not self.drain():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            sleep(min(left, self._backoff.delay(self.failures)))
        return True

    def wake(self) -> None:
        """Something was recorded: look at the log now (unless backing off)."""
        self._wake.set()

    def resync(self) -> None:
        """Another daemon may have moved the checkpoint: read it again before the next drain."""
        self._saved = None

    def run(self, stop: threading.Event) -> None:
        """The follower's thread: drain, back off after a failure, sleep until woken."""
        self._stop = stop
        while not stop.is_set():
            if not self._may_deliver():  # another daemon follows; a gained lease wakes us
                self._wake.wait(IDLE_WAKE)
                self._wake.clear()
                continue
            try:
                caught_up = self.drain()
            except RegwatchError as exc:  # the store failed: try again later
                log.warning("notify: sink %s: %s", self.name, exc)
                caught_up = False
                self.failures += 1
            if caught_up:
                self._wake.wait(IDLE_WAKE)
                self._wake.clear()
            else:
                stop.wait(self._backoff.delay(self.failures))

    # -- one event -------------------------------------------------------------------------

    def _follow(self, event: StoredEvent) -> None:
        skipped = self._skipping.get(event.stream)
        if skipped is not None and event.version <= skipped[1]:
            if event.version == skipped[1]:
                del self._skipping[event.stream]
            self._read = event.position
            return
        notice = self._notice(event)
        if notice is not None:
            self._deliver(notice)
        self._read = event.position
        if notice is not None:
            self._save(event.position)

    def _notice(self, event: StoredEvent) -> Notice | None:
        settings = self.settings
        initial = self._notices.initial(event)
        if initial is not None:
            if initial.versions is not None:
                self._skipping[initial.stream] = (event.position, initial.versions[1])
            wanted = settings.announce_initial and initial.notice.watch in settings.watches
            return initial.notice if wanted and settings.wants(initial.notice.words) else None
        failed = self._notices.failed(event)
        if failed is not None:
            wanted = failed.watch in settings.watches and settings.wants(failed.words)
            return failed if wanted else None
        if event.stream not in settings.repositories:
            return None
        notice = self._notices.tag(event)
        return notice if notice is not None and settings.wants(notice.words) else None

    def _deliver(self, notice: Notice) -> None:
        try:
            self._sink.deliver(notice)
        except RegwatchError as exc:
            self._on_delivery(self.name, False)
            if self.failures == 0:
                log.warning("notify: sink %s: %s; retrying with backoff", self.name, exc)
            raise _Failed from exc
        self._on_delivery(self.name, True)
        if self.failures:
            log.info("notify: sink %s delivers again", self.name)
            self.failures = 0

    # -- the checkpoint --------------------------------------------------------------------

    def _save(self, position: int) -> None:
        """Advance the checkpoint, unless inside an initial poll's range (see the module)."""
        if self._skipping:
            position = min(first for first, _ in self._skipping.values()) - 1
        if self._saved is None or position <= self._saved:
            return
        self._store.save_checkpoint(self.settings.checkpoint, self._saved, position)
        self._saved = position

    def _restart(self) -> None:
        self._saved = self._store.checkpoint(self.settings.checkpoint)
        self._read = self._saved
        self._skipping.clear()

    def _report_lag(self) -> None:
        try:
            self._on_lag(self.name, self._store.count_after(self._saved or 0))
        except RegwatchError:
            return


class _Failed(Exception):
    """The sink did not accept a notice: the drain stops there."""

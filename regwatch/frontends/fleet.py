"""A daemon as one member of a fleet: the turn rules of its watches and the leases it keeps.

Every daemon of a fleet runs the same config with its own APScheduler timer; the timers fire
for every watch in every daemon, and the store's leases (`store/leases.py`) decide which one
polls: the turn is taken by one daemon, once per period, never while another holds it.

Who asks first is not left to chance. The daemons alive (each renews its `member:` row) spread
the watches by rendezvous hashing: a watch's preferred daemon is the member whose hash with the
watch's name is highest, so a daemon that joins takes about 1/N of the watches and one that
dies gives up only its own. The preferred daemon takes a turn as soon as it is due (less the
slack jitter needs); the others only once it is overdue by as much, which is how a dead or
stuck daemon's watches are taken over. A poll in flight holds its turn for a few seconds at a
time, renewed by `Heartbeat`; a sink's follower runs only in the daemon that holds the sink's
lease, renewed by `SinkLeadership`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from regwatch.errors import RegwatchError
from regwatch.frontends.watchconfig import CRON_TIMEZONE, Watch
from regwatch.store.leases import MEMBER, Leases

log = logging.getLogger("regwatch.daemon")

HOLD_MAX: Final = timedelta(seconds=10)
"""The longest a turn is held between two renewals: a dead daemon's watch waits at most this
past its due time (decisions: leases of seconds, not minutes)."""
HOLD_MIN: Final = timedelta(seconds=1)
SLACK_MAX: Final = timedelta(seconds=1)
"""How much earlier than one period after the last turn a timer may take the next, besides
twice the jitter: the fleet's timers are aligned on the log to about this."""


def watch_lease(watch: Watch) -> str:
    return f"watch:{watch.name}"


def sink_lease(name: str) -> str:
    return f"sink:{name}"


@dataclass(frozen=True)
class TurnRule:
    """When a watch's next turn may be taken (by its preferred daemon: `period - slack` after
    the last; by any other: `period + slack` after it), and how long a turn is held between
    renewals."""

    period: timedelta
    slack: timedelta
    hold: timedelta


def turn_rule(watch: Watch) -> TurnRule:
    """A watch's period (its `every`, or the gap between two runs of its crontab), the slack
    its jitter needs (a run may come up to one jitter early after one up to one jitter late),
    and a hold of half the period within 1–10 s."""
    period = watch.every or crontab(watch)[1] or timedelta(days=1)
    jitter = timedelta(seconds=watch.jitter.seconds(period))
    slack = min(2 * jitter + min(SLACK_MAX, period / 4), period / 2)
    hold = min(HOLD_MAX, max(HOLD_MIN, period / 2))
    return TurnRule(period, slack, hold)


def preferred(watch: str, members: Sequence[str]) -> str | None:
    """The member that polls `watch` (rendezvous hashing: the highest hash of the pair)."""
    if not members:
        return None
    return max(members, key=lambda member: hashlib.sha256(f"{watch}\0{member}".encode()).digest())


def crontab(watch: Watch) -> tuple[Any, timedelta | None]:
    """The watch's crontab as an APScheduler trigger, and its period: the gap between its next
    two runs (None when it has fewer), which its jitter and its turn rule both scale with."""
    from apscheduler.triggers.cron import CronTrigger  # noqa: PLC0415

    assert watch.cron is not None
    cron = CronTrigger.from_crontab(watch.cron, timezone=CRON_TIMEZONE)
    first = cron.get_next_fire_time(None, datetime.now(UTC))
    second = cron.get_next_fire_time(first, first + timedelta(seconds=1)) if first else None
    if first is None or second is None:
        return cron, None
    gap: timedelta = second - first
    return cron, gap


class _Renewal(ABC):
    """Leases renewed on a thread of their own, every third of `hold`, from `start` until
    `stop`, which lets go of them so the others need not wait the hold out."""

    def __init__(self, leases: Leases, hold: timedelta, thread_name: str) -> None:
        self._leases = leases
        self.hold = hold
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread_name = thread_name
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._renew(starting=True)
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._release()

    def _run(self) -> None:
        while not self._stop.wait(self.hold.total_seconds() / 3):
            self._renew(starting=False)

    @abstractmethod
    def _renew(self, *, starting: bool) -> None: ...

    @abstractmethod
    def _release(self) -> None: ...


class Heartbeat(_Renewal):
    """Says this daemon is alive and renews the holds of its polls in flight, on a thread of
    its own (a pool full of long polls must not let their holds lapse); `members` is the fleet
    as of the last beat. Stopping leaves the fleet at once: the others take its watches."""

    def __init__(self, leases: Leases, hold: timedelta) -> None:
        super().__init__(leases, hold, "regwatch-heartbeat")
        self.members: tuple[str, ...] = (leases.owner,)
        self._names: dict[str, int] = {}

    def holding(self, name: str) -> None:
        with self._lock:
            self._names[name] = self._names.get(name, 0) + 1

    def released(self, name: str) -> None:
        with self._lock:
            left = self._names.get(name, 0) - 1
            if left > 0:
                self._names[name] = left
            else:
                self._names.pop(name, None)

    def _renew(self, *, starting: bool) -> None:
        with self._lock:
            names = list(self._names)
        try:
            self._leases.renew(names, self.hold)
            alive = self._leases.beat(self.hold)
        except RegwatchError as exc:
            log.warning("fleet: cannot renew this daemon's leases: %s", exc)
            return
        if tuple(alive) != self.members:
            log.info("fleet: %d daemon(s) alive", len(alive))
        self.members = tuple(alive) or (self._leases.owner,)

    def _release(self) -> None:
        try:
            self._leases.resign([f"{MEMBER}{self._leases.owner}"])
        except RegwatchError as exc:
            log.warning("fleet: cannot leave the fleet: %s", exc)


class SinkLeadership(_Renewal):
    """Holds the leases of the sinks this daemon follows, on a thread of its own; a follower
    delivers only while `leads(name)` is true, so one daemon of the fleet follows each sink.
    Stopping lets go of them, so another daemon follows at once."""

    def __init__(self, leases: Leases, sinks: Sequence[str], hold: timedelta) -> None:
        super().__init__(leases, hold, "regwatch-sink-leases")
        self._sinks = list(sinks)
        self._led: set[str] = set()
        self.on_change: Callable[[str, bool], None] = lambda _name, _led: None

    def leads(self, name: str) -> bool:
        with self._lock:
            return name in self._led

    def _renew(self, *, starting: bool) -> None:
        """Take or renew each sink's lease; say which ones this daemon gained or lost (at
        start, only in the debug log: a lone daemon always gains them all)."""
        for name in self._sinks:
            try:
                led = self._leases.lead(sink_lease(name), self.hold)
            except RegwatchError as exc:
                log.warning("fleet: cannot hold the lease of sink %s: %s", name, exc)
                led = False
            with self._lock:
                before = name in self._led
                if led:
                    self._led.add(name)
                else:
                    self._led.discard(name)
            if led != before:
                log.log(
                    logging.DEBUG if starting else logging.INFO,
                    "fleet: %s sink %s",
                    "following" if led else "no longer following",
                    name,
                )
                self.on_change(name, led)

    def _release(self) -> None:
        with self._lock:
            led, self._led = self._led, set()
        try:
            self._leases.resign([sink_lease(name) for name in led])
        except RegwatchError as exc:
            log.warning("fleet: cannot release the sinks' leases: %s", exc)

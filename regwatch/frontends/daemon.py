"""`regwatch watch`: poll every watch of a config on its schedule, and record what is seen.

APScheduler 3 is the process's timer (a `BackgroundScheduler`, its job store in memory and
rebuilt from the config at start): one job per watch, never two runs of a job at once, missed
runs coalesced into one, at most `workers` polls in flight. The log is the durable state: at
start, a watch whose last successful poll is older than its interval polls at once, the others
wait for their turn, so a restart does not stampede the registries.

Each poll is one `Service.poll`, whose events and run commit in one transaction: a daemon
killed at any moment loses nothing it had committed and leaves no half poll behind.

Several daemons with one config and one store are a fleet (`fleet.py`): a timer's run polls
only when the store's lease gives this daemon the watch's turn, and a sink is followed by the
one daemon that holds its lease. `--once` polls and delivers without asking: it is a person's
explicit request.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from regwatch.errors import RateLimited, RegwatchError
from regwatch.frontends.fleet import (
    HOLD_MAX,
    Heartbeat,
    SinkLeadership,
    TurnRule,
    crontab,
    preferred,
    turn_rule,
    watch_lease,
)
from regwatch.frontends.metrics import Metrics
from regwatch.frontends.watchconfig import DaemonConfig, Watch
from regwatch.retrying import RetryPolicy
from regwatch.service import Service
from regwatch.store.leases import Leases

if TYPE_CHECKING:
    from regwatch.notify.follower import Backoff
    from regwatch.notify.notifier import Notifier

log = logging.getLogger("regwatch.daemon")

GRACE: Final = 30.0
"""Seconds in-flight polls get to finish after SIGTERM or SIGINT (decisions: 30 s)."""

ONCE_DRAIN: Final = 30.0
"""Seconds each sink gets after `--once` polled to deliver what is pending (decisions: 30 s)."""
SINK_GRACE: Final = 15.0
"""Seconds a sink in the middle of a delivery gets after SIGTERM (its deadline is 10 s)."""

RETENTION_EVERY: Final = timedelta(hours=1)
"""How often old job runs are dropped, when the config asks for retention."""

SINK_HOLD: Final = 10.0
"""Seconds a daemon holds a sink's lease between renewals (scaled like the retries)."""
AFTER_HOLD: Final = timedelta(milliseconds=200)
"""How long after another daemon's hold lapses a held watch's turn is asked for again."""


def daemon_name() -> str:
    """`host:pid`: which process polled, in the runs it records."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Outcome:
    """How one poll of one watch ended: `ok`, `failed` or `rate_limited`; `skipped` when a
    timer's run did not poll (not this daemon's turn)."""

    watch: str
    result: str
    error: str | None = None


class Daemon:
    """The watches of one config, polled through one service."""

    def __init__(
        self,
        config: DaemonConfig,
        service: Service,
        metrics: Metrics,
        *,
        clock: Callable[[], datetime] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self.service = service
        self.metrics = metrics
        self._clock = clock or (lambda: datetime.now(UTC))
        self.notifier = notifier
        self._in_flight = 0
        self._idle = threading.Condition()
        self._scheduler: Any = None
        self._rules: dict[str, TurnRule] = {}
        """Each watch's turn rule, made by `start` (`--once` takes no turn)."""
        self._leases: Leases | None = None
        self._heartbeat: Heartbeat | None = None

    @property
    def leases(self) -> Leases:
        """This daemon's leases in the store, made on first use (`--once` never asks)."""
        if self._leases is None:
            self._leases = Leases(self.service.store(), daemon_name())
        return self._leases

    @property
    def heartbeat(self) -> Heartbeat:
        if self._heartbeat is None:
            holds = [rule.hold for rule in self._rules.values()]
            self._heartbeat = Heartbeat(self.leases, min(holds, default=HOLD_MAX))
        return self._heartbeat

    # -- one timer run -------------------------------------------------------------------------

    def turn(self, watch: Watch) -> Outcome:
        """A timer's run: poll when the fleet's lease gives this daemon the watch's turn."""
        rule = self._rules[watch.name]
        name = watch_lease(watch)
        mine = preferred(watch.name, self.heartbeat.members) == self.leases.owner
        try:
            turn = self.leases.take_turn(
                name,
                period=rule.period,
                slack=rule.slack if mine else -rule.slack,
                hold=rule.hold,
            )
        except RegwatchError as exc:
            log.warning("watch %s: %s", watch.name, exc)
            self.metrics.polled(watch.name, "failed", 0.0)
            return Outcome(watch.name, "failed", str(exc))
        if not turn.taken:
            self.metrics.skipped(watch.name)
            if turn.held_until is not None:
                self._ask_again(watch, turn.held_until + AFTER_HOLD)
            return Outcome(watch.name, "skipped")
        self.heartbeat.holding(name)
        try:
            return self.poll(watch)
        finally:
            self.heartbeat.released(name)
            try:
                self.leases.end_turn(name)
            except RegwatchError as exc:
                log.warning("watch %s: %s", watch.name, exc)

    def _ask_again(self, watch: Watch, when: datetime) -> None:
        """Another daemon holds the turn: ask once more when its hold lapses, so a daemon that
        died polling is replaced within seconds, not a period."""
        scheduler = self._scheduler
        if scheduler is None or not scheduler.running:
            return
        scheduler.add_job(
            self.turn,
            "date",
            run_date=when,
            args=[watch],
            id=f"{watch.name} (held)",
            replace_existing=True,
        )

    # -- one poll ------------------------------------------------------------------------------

    def poll(self, watch: Watch) -> Outcome:
        """Poll one watch; every failure becomes a warning line and a `failed` outcome."""
        with self._idle:
            self._in_flight += 1
        started = time.monotonic()
        try:
            done = self.service.poll(watch.spec, watch=watch.name)
        except RateLimited as exc:
            outcome = Outcome(watch.name, "rate_limited", str(exc))
        except RegwatchError as exc:
            outcome = Outcome(watch.name, "failed", str(exc))
        except Exception as exc:  # a daemon outlives a bug in one poll; the line says what
            log.debug("internal error polling %s", watch.name, exc_info=True)
            outcome = Outcome(watch.name, "failed", f"internal error: {type(exc).__name__}: {exc}")
        else:
            outcome = Outcome(watch.name, "ok")
            self.metrics.polled_ok(watch.name, len(done.state.tags), done.events)
            if done.events:
                log.info("%s: %s", watch.name, _summary(done.events))
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()
        if self.notifier is not None:
            self.notifier.wake()  # whatever the poll recorded, its sinks may have news
        self.metrics.polled(watch.name, outcome.result, time.monotonic() - started)
        if outcome.error is not None:
            log.warning("watch %s: %s", watch.name, outcome.error)
        return outcome

    def poll_all(self) -> list[Outcome]:
        """`--once`: every watch polled once, at most `workers` at a time."""
        with ThreadPoolExecutor(max_workers=self.config.workers) as pool:
            return list(pool.map(self.poll, self.config.watches))

    # -- the schedule --------------------------------------------------------------------------

    def start(self) -> None:
        """Schedule every watch (and retention) and start the timer; returns at once."""
        from apscheduler.executors.pool import ThreadPoolExecutor as Workers  # noqa: PLC0415
        from apscheduler.schedulers.background import BackgroundScheduler  # noqa: PLC0415

        scheduler = BackgroundScheduler(
            executors={"default": Workers(self.config.workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        now = self._clock()
        self._rules = {watch.name: turn_rule(watch) for watch in self.config.watches}
        for watch in self.config.watches:
            trigger = trigger_of(watch)
            first = self.first_run(watch, trigger, now)
            scheduler.add_job(self.turn, trigger, args=[watch], id=watch.name, next_run_time=first)
        if self.config.retention_runs is not None:
            scheduler.add_job(
                self.drop_old_runs,
                "interval",
                seconds=RETENTION_EVERY.total_seconds(),
                id="retention",
                next_run_time=now,
            )
        self._scheduler = scheduler
        self.heartbeat.start()
        scheduler.start()

    def first_run(self, watch: Watch, trigger: Any, now: datetime) -> datetime:
        """Now, when the last successful poll is older than the interval (or there is none);
        else the watch's next turn after that poll."""
        due = next_due(watch, self.service.last_success(watch.spec), trigger)
        return now if due is None or due <= now else due

    def drop_old_runs(self) -> None:
        if self.config.retention_runs is None:
            return
        cutoff = self._clock() - self.config.retention_runs
        try:
            passed = self.notifier.lowest_checkpoint() if self.notifier is not None else None
            dropped = self.service.drop_runs(cutoff, passed)
        except RegwatchError as exc:
            log.warning("retention: %s", exc)
            return
        if dropped:
            log.info("retention: dropped %d job run(s) older than %s", dropped, cutoff.isoformat())

    def stop(self, grace: float = GRACE) -> bool:
        """Stop scheduling and give in-flight polls `grace` seconds; whether they all ended."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        deadline = time.monotonic() + grace
        try:
            return self._wait_idle(deadline)
        finally:
            if self._heartbeat is not None:
                self._heartbeat.stop()

    def _wait_idle(self, deadline: float) -> bool:
        with self._idle:
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    @property
    def running(self) -> bool:
        return self._scheduler is not None and bool(self._scheduler.running)

    def healthy(self) -> bool:
        """The timer runs and the store answers: what `/healthz` reports."""
        if not self.running:
            return False
        try:
            self.service.store().stream_version("")
        except RegwatchError:
            return False
        return True


def _notifier(
    config: DaemonConfig,
    service: Service,
    metrics: Metrics,
    leadership: SinkLeadership | None = None,
) -> Notifier | None:
    """The config's sinks, each starting where its checkpoint is (a new one: the log's end
    now, before the first poll); None without sinks. With `leadership`, a sink is followed
    only while this daemon holds its lease."""
    if not config.notify:
        return None
    from regwatch.notify.notifier import Notifier  # noqa: PLC0415

    for sink in config.notify:
        metrics.sink(sink.name)
    notifier = Notifier(
        config.notify,
        service.store(),
        backoff=sink_backoff(service.retry),
        on_delivery=metrics.delivered,
        on_lag=metrics.lagging,
        follows=leadership.leads if leadership is not None else None,
    )
    notifier.begin()
    if leadership is not None:
        leadership.on_change = notifier.lead_changed
    return notifier


def sink_leadership(config: DaemonConfig, service: Service) -> SinkLeadership | None:
    """The sinks' leases this daemon competes for; None without sinks."""
    if not config.notify:
        return None
    scale = service.retry.base / RetryPolicy.base
    hold = timedelta(seconds=max(1.0, SINK_HOLD * scale))
    return SinkLeadership(
        Leases(service.store(), daemon_name()), [sink.name for sink in config.notify], hold
    )


def sink_backoff(retry: RetryPolicy) -> Backoff:
    """1 s doubling to 60 s, scaled with the retry schedule (tests run it in milliseconds)."""
    from regwatch.notify.follower import Backoff  # noqa: PLC0415

    scale = retry.base / RetryPolicy.base
    return Backoff(first=1.0 * scale, cap=60.0 * scale)


def drain_window(service: Service) -> float:
    """`--once`: what each sink gets to deliver (30 s; scaled like the retries, at least 2 s)."""
    return max(2.0, ONCE_DRAIN * service.retry.base / RetryPolicy.base)


def _drain(notifier: Notifier, window: float) -> None:
    for name in notifier.drain(window):
        log.warning(
            "notify: sink %s has not accepted everything within %.0f s; the rest stays"
            " pending for the next run",
            name,
            window,
        )


def next_due(watch: Watch, last_poll: datetime | None, trigger: Any = None) -> datetime | None:
    """The watch's turn after its last poll: the interval (or the crontab) from it; None when
    it never polled (a daemon polls it as soon as it starts)."""
    if last_poll is None:
        return None
    if watch.every is not None:
        return last_poll + watch.every
    due: datetime | None = (trigger or trigger_of(watch)).get_next_fire_time(
        None, last_poll + timedelta(microseconds=1)
    )
    return due


def trigger_of(watch: Watch) -> Any:
    """The watch's APScheduler trigger: an interval or a crontab line, with its jitter."""
    if watch.cron is not None:
        cron, period = crontab(watch)
        if period is not None:
            cron.jitter = watch.jitter.seconds(period) or None
        return cron
    from apscheduler.triggers.interval import IntervalTrigger  # noqa: PLC0415

    every = watch.every or timedelta(minutes=5)
    jitter = watch.jitter.seconds(every)
    return IntervalTrigger(seconds=every.total_seconds(), timezone=UTC, jitter=jitter or None)


def _summary(events: Sequence[Any]) -> str:
    """`2 TagAppeared, 1 TagMoved`: what a poll appended, for the log."""
    counts: dict[str, int] = {}
    for event in events:
        counts[event.kind] = counts.get(event.kind, 0) + 1
    return ", ".join(f"{count} {kind}" for kind, count in counts.items())


def run(
    config: DaemonConfig,
    service: Service,
    metrics: Metrics,
    *,
    once: bool,
    listen: tuple[str, int] | None,
) -> int:
    """`regwatch watch`: 0 when stopped by a signal (or, with `once`, when every poll
    succeeded), 1 when a `--once` poll failed."""
    from regwatch.frontends.metrics import serve  # noqa: PLC0415

    service.store()  # created, or refused in one line, before anything else happens
    leadership = None if once else sink_leadership(config, service)
    notifier = _notifier(config, service, metrics, leadership)
    daemon = Daemon(config, service, metrics, notifier=notifier)
    if once:
        server = serve(listen, metrics, lambda: True) if listen else None
        try:
            outcomes = daemon.poll_all()
            if notifier is not None:
                _drain(notifier, drain_window(service))
        finally:
            if server is not None:
                server.shutdown()
        failed = [o for o in outcomes if o.result != "ok"]
        log.info("polled %d watch(es), %d failed", len(outcomes), len(failed))
        return 1 if failed else 0
    stop = threading.Event()
    previous = {
        number: signal.signal(number, lambda *_: stop.set())
        for number in (signal.SIGTERM, signal.SIGINT)
    }
    server = serve(listen, metrics, daemon.healthy) if listen else None
    try:
        if notifier is not None:
            notifier.start()
        if leadership is not None:
            leadership.start()
        daemon.start()
        log.info(
            "watching %d watch(es) with %d workers; store %s",
            len(config.watches),
            config.workers,
            service.store_shown,
        )
        stop.wait()
        log.info("stopping: no new polls; waiting up to %.0f s for those in flight", GRACE)
        finished = daemon.stop(GRACE)
    finally:
        if notifier is not None:
            notifier.stop(SINK_GRACE)
        if leadership is not None:
            leadership.stop()
        if server is not None:
            server.shutdown()
        for number, handler in previous.items():
            signal.signal(number, handler)
    if not finished:
        log.warning("polls still in flight after %.0f s; exiting without them", GRACE)
        logging.shutdown()
        os._exit(0)  # their transactions roll back: nothing half-written
    return 0

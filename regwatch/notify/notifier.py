"""The daemon's notification sinks together: their followers, threads, and `--once` drain.

Each sink has its own follower on its own thread, so a sink that is down delays nobody: not
the polls, not the other sinks. New sinks start at the log's end as the daemon starts, before
its first poll.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from regwatch.net import Transport
from regwatch.notify.follower import Backoff, Follower
from regwatch.notify.settings import SinkSettings
from regwatch.notify.sinks import sink_for
from regwatch.store.eventstore import EventStore
from regwatch.store.wakeups import AppendListener

DELIVERY_TIMEOUT = 10.0
"""Seconds an HTTP sink gets to answer one notice."""


class Notifier:
    """Every configured sink's follower; `wake` after each recorded poll."""

    def __init__(
        self,
        sinks: Sequence[SinkSettings],
        store: EventStore,
        *,
        backoff: Backoff | None = None,
        on_delivery: Callable[[str, bool], None] | None = None,
        on_lag: Callable[[str, int], None] | None = None,
        follows: Callable[[str], bool] | None = None,
    ) -> None:
        self._transport = Transport(request_timeout=DELIVERY_TIMEOUT, secret_urls=True)
        self._store = store
        self.followers = [
            Follower(
                settings,
                store,
                sink_for(settings, self._transport),
                backoff=backoff,
                on_delivery=on_delivery,
                on_lag=on_lag,
                may_deliver=None if follows is None else partial(follows, settings.name),
            )
            for settings in sinks
        ]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener = AppendListener(store.engine, self.wake)
        """On PostgreSQL, another daemon's polls wake the followers too (a fleet's sink is
        followed by one daemon while all of them poll)."""

    def begin(self) -> None:
        """Give every sink without a checkpoint the log's end as its start."""
        end = self._store.last_position()
        for follower in self.followers:
            follower.start_at(end)

    def lowest_checkpoint(self) -> int | None:
        """What every sink has passed: retention keeps the runs after it."""
        if not self.followers:
            return None
        return min(self._store.checkpoint(f.settings.checkpoint) for f in self.followers)

    def start(self) -> None:
        """One thread per follower, running until `stop`."""
        for follower in self.followers:
            thread = threading.Thread(
                target=follower.run,
                args=(self._stop,),
                name=f"regwatch-sink-{follower.name}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        self._listener.start()

    def wake(self) -> None:
        for follower in self.followers:
            follower.wake()

    def lead_changed(self, name: str, led: bool) -> None:
        """This daemon gained (or lost) a sink: it reads the checkpoint again and looks now."""
        for follower in self.followers:
            if follower.name == name:
                follower.resync()
                if led:
                    follower.wake()

    def drain(self, window: float) -> list[str]:
        """`--once`: every sink delivers what is pending, each within `window` seconds
        (backing off after failures), all at once; the names of those still behind."""
        deadline = time.monotonic() + window
        if not self.followers:
            return []
        with ThreadPoolExecutor(max_workers=len(self.followers)) as pool:
            done = list(pool.map(lambda f: f.drain_until(deadline), self.followers))
        return [f.name for f, ok in zip(self.followers, done, strict=True) if not ok]

    def stop(self, timeout: float) -> None:
        """Stop the followers; one in the middle of a delivery gets `timeout` seconds."""
        self._stop.set()
        self._listener.stop()
        self.wake()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._transport.close()

"""Connections that answer to their request: a deadline watchdog and a check of the peer.

The request's `Watch` travels in a context variable into urllib3, whose connections (these
subclasses) report which socket the request uses, arm the deadline once the request is sent, and
show a new direct connection's peer address to the watch's check before a byte is sent. The
`WATCHDOG` thread hangs up a watched connection whose deadline passed while its thread is
blocked reading: requests' per-read timeouts never trip on a server trickling a byte at a time.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, Final

import urllib3.connection
import urllib3.connectionpool

PeerCheck = Callable[[str], None]
"""Judges the address a new direct connection reached; raises to refuse it before any byte."""


class Watch:
    """One request: its deadline, the connection it uses, whether the deadline hung it up, and
    the check of the address its new connections reach."""

    def __init__(self, seconds: float = math.inf, peer_check: PeerCheck | None = None) -> None:
        self.seconds = seconds
        self.peer_check = peer_check
        self.connection: urllib3.connection.HTTPConnection | None = None
        self.expiry = math.inf
        self.fired = False


CURRENT: ContextVar[Watch | None] = ContextVar("regwatch_request", default=None)
"""The watch of the request this thread (context) is sending."""


class Watchdog:
    """One daemon thread hanging up the connections of armed watches whose expiry passed.

    A watch is armed only while its own thread is blocked in that request's I/O, so the
    connection hung up is never one the pool has since lent to another request.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._armed: set[Watch] = set()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def armed(self, watch: Watch, expiry: float) -> Iterator[None]:
        self.arm(watch, expiry)
        try:
            yield
        finally:
            self.disarm(watch)

    def arm(self, watch: Watch, expiry: float) -> None:
        with self._condition:
            watch.expiry = expiry
            self._armed.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="regwatch-deadlines", daemon=True
                )
                self._thread.start()
            self._condition.notify()

    def disarm(self, watch: Watch) -> None:
        with self._condition:
            self._armed.discard(watch)

    def _run(self) -> None:
        with self._condition:
            while True:
                now = time.monotonic()
                for watch in [w for w in self._armed if w.expiry <= now]:
                    self._armed.discard(watch)
                    watch.fired = True
                    _hang_up(watch.connection)
                soonest = min((w.expiry for w in self._armed), default=None)
                self._condition.wait(None if soonest is None else max(soonest - now, 0.001))


WATCHDOG: Final = Watchdog()


def _hang_up(connection: urllib3.connection.HTTPConnection | None) -> None:
    sock = connection.sock if connection is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _WatchedConnection(urllib3.connection.HTTPConnection):
    """Tells the request's watch which connection it uses, and runs its peer check.

    The HTTPS class puts `HTTPSConnection` after this one, so `super()` reaches TLS there.
    """

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        self._check_peer(sock)
        return sock

    def connect(self) -> None:
        self._watch_this()
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        self._watch_this()
        super().request(*args, **kwargs)
        self._sent()

    def _watch_this(self) -> None:
        watch = CURRENT.get()
        if watch is not None:
            watch.connection = self

    def _sent(self) -> None:
        """The request is on the wire: its answer's deadline starts now."""
        watch = CURRENT.get()
        if watch is not None and math.isfinite(watch.seconds):
            WATCHDOG.arm(watch, time.monotonic() + watch.seconds)

    def _check_peer(self, sock: socket.socket) -> None:
        watch = CURRENT.get()
        if watch is None or watch.peer_check is None or self.proxy is not None:
            return
        try:
            watch.peer_check(str(sock.getpeername()[0]))
        except BaseException:
            sock.close()
            raise


class _WatchedHTTPSConnection(_WatchedConnection, urllib3.connection.HTTPSConnection):
    """The same watch, over TLS."""


class _WatchedHTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class _WatchedHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


WATCHED_POOLS: Final = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

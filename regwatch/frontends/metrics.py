"""The daemon's Prometheus metrics, and the small HTTP server for `/metrics` and `/healthz`.

Names follow Prometheus conventions, prefixed `regwatch_`; labels are bounded: a watch or sink
name (from the config), a result, a registry host, an HTTP status code, an event kind. Never a
tag.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

from regwatch import __version__
from regwatch.errors import ConfigError

log = logging.getLogger("regwatch.daemon")

_WIRE_TO_CANONICAL = {"registry-1.docker.io": "index.docker.io"}


class Metrics:
    """Every metric of one daemon, in a registry of its own (tests build several)."""

    def __init__(self, daemon: str = "") -> None:
        self.registry = CollectorRegistry()
        self.daemon = daemon
        build = Info("regwatch_build", "The regwatch build.", registry=self.registry)
        build.info({"version": __version__, "python": sys.version.split()[0]})
        self._polls = Counter(
            "regwatch_polls",
            "Polls of each watch, by result (ok, failed, rate_limited).",
            ["watch", "result"],
            registry=self.registry,
        )
        self._daemon_polls = Counter(
            "regwatch_daemon_polls",
            "Polls by this daemon (host:pid), by result: its share of a fleet's work.",
            ["daemon", "result"],
            registry=self.registry,
        )
        self._turns_skipped = Counter(
            "regwatch_turns_skipped",
            "Timer runs that did not poll: the watch's turn was not due, or another daemon"
            " of the fleet held it.",
            ["watch"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "regwatch_poll_duration_seconds",
            "Wall time of one poll.",
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
        )
        self._requests = Counter(
            "regwatch_registry_requests",
            "HTTP requests to registries and their token services, by host and status code.",
            ["registry", "code"],
            registry=self.registry,
        )
        self._last_ok = Gauge(
            "regwatch_last_successful_poll_timestamp_seconds",
            "Unix time of each watch's last successful poll.",
            ["watch"],
            registry=self.registry,
        )
        self._events = Counter(
            "regwatch_events_appended",
            "Events appended to the log, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self._tags = Gauge(
            "regwatch_tags_known",
            "Tags the log knows for each watch's repository.",
            ["watch"],
            registry=self.registry,
        )
        self._deliveries = Counter(
            "regwatch_deliveries",
            "Notices offered to each notification sink, by result (ok, failed).",
            ["sink", "result"],
            registry=self.registry,
        )
        self._lag = Gauge(
            "regwatch_follower_lag_events",
            "Events of the log after each sink's checkpoint.",
            ["sink"],
            registry=self.registry,
        )

    def sink(self, name: str) -> None:
        """Show a configured sink's series from the start, at zero."""
        for result in ("ok", "failed"):
            self._deliveries.labels(name, result)
        self._lag.labels(name)

    def delivered(self, sink: str, ok: bool) -> None:
        self._deliveries.labels(sink, "ok" if ok else "failed").inc()

    def lagging(self, sink: str, events: int) -> None:
        self._lag.labels(sink).set(events)

    def polled(self, watch: str, result: str, seconds: float) -> None:
        self._polls.labels(watch, result).inc()
        self._daemon_polls.labels(self.daemon, result).inc()
        self._duration.observe(seconds)

    def skipped(self, watch: str) -> None:
        self._turns_skipped.labels(watch).inc()

    def polled_ok(self, watch: str, tags: int, events: Sequence[Any]) -> None:
        self._last_ok.labels(watch).set_to_current_time()
        self._tags.labels(watch).set(tags)
        for event in events:
            self._events.labels(event.kind).inc()

    def answered(self, host: str, status: int) -> None:
        """What the transport tells of each answer (`Transport.on_answer`)."""
        self._requests.labels(_WIRE_TO_CANONICAL.get(host, host), str(status)).inc()

    def text(self) -> bytes:
        return generate_latest(self.registry)


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:9100` for IPv6); a bad one is a ConfigError naming the flag."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--listen {text!r}: give HOST:PORT, such as 127.0.0.1:9100")
    return host, int(port)


def serve(
    address: tuple[str, int], metrics: Metrics, healthy: Callable[[], bool]
) -> ThreadingHTTPServer:
    """Serve `/metrics` and `/healthz` on a daemon thread; shut it down with `.shutdown()`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, metrics.text(), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                ok = healthy()
                self._send(200 if ok else 503, b"ok\n" if ok else b"unhealthy\n", "text/plain")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: a scrape every 15 s is not news."""

    try:
        server = ThreadingHTTPServer(address, Handler)
    except OSError as exc:
        raise ConfigError(f"--listen {address[0]}:{address[1]}: {exc.strerror or exc}") from exc
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="regwatch-http", daemon=True).start()
    return server

"""Serving a test server from a daemon thread, so a crashed session cannot hang on it."""

from __future__ import annotations

import socketserver
import threading


class Background:
    """Runs `server.serve_forever` in a daemon thread; `stop` returns within one poll interval."""

    def __init__(self, server: socketserver.BaseServer, name: str, poll: float = 0.01) -> None:
        self._server = server
        self._name = name
        self._poll = poll
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": self._poll},
                name=self._name,
                daemon=True,
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop serving (idempotent); the caller still closes the listening socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None

"""A loopback TCP forwarder that counts the connections it accepts, and can go away.

What "zero registry requests" means here (the fleet decision): not even a TLS handshake or a
ping. A check whose source names the forwarder's port reaches the registry only through it, so
the count of accepted connections is every attempt the check made, whatever the protocol;
after `stop()` nothing listens on the port, so a check that tried would fail.
"""

from __future__ import annotations

import socket
import threading

from tests.tcp import Listener, pipe


class Forwarder(Listener):
    def __init__(self, upstream_port: int) -> None:
        super().__init__()
        self._upstream = ("127.0.0.1", upstream_port)
        self._lock = threading.Lock()
        self._accepted = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def take_count(self) -> int:
        """Connections accepted since the last call."""
        with self._lock:
            count, self._accepted = self._accepted, 0
        return count

    def accepted(self) -> None:
        with self._lock:
            self._accepted += 1

    def handle(self, client: socket.socket) -> None:
        with socket.create_connection(self._upstream) as upstream:
            pipe(client, upstream)

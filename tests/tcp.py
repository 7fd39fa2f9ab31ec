"""Loopback TCP servers for the suite's relays (`forwarder.Forwarder`, `cloud.ConnectProxy`):
an accept loop on a thread of its own, a connection handled on a thread each, and `pipe`, which
copies bytes both ways until either side hangs up."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from typing import Self


class Listener:
    """Listens on a free loopback port; `handle` serves each accepted connection."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, name=type(self).__name__, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: the port refuses connections from now on.

        `close()` alone does not wake a thread blocked in `accept()` on Linux; `shutdown()` does
        (accept fails with EINVAL), so the accept loop ends at once.
        """
        with contextlib.suppress(OSError):  # already shut down
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
            assert not self._thread.is_alive(), "the accept loop did not end"

    def accepted(self) -> None:
        """Called on the accept thread for each connection, before it is handled."""

    def handle(self, client: socket.socket) -> None:
        raise NotImplementedError

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted()
            threading.Thread(target=self._handled, args=(client,), daemon=True).start()

    def _handled(self, client: socket.socket) -> None:
        with client:
            self.handle(client)


def pipe(one: socket.socket, other: socket.socket) -> None:
    """Copy bytes both ways until a side hangs up, fails, or both are quiet for 30 s."""
    peers = {one: other, other: one}
    while True:
        readable, _, _ = select.select(list(peers), [], [], 30)
        if not readable:
            return
        for sock in readable:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            peers[sock].sendall(data)

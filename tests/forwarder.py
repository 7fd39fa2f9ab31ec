"""A loopback TCP forwarder that counts the connections it accepts, and can go away.

What "zero registry requests" means here (the fleet decision): not even a TLS handshake or a
ping. A check whose source names the forwarder's port reaches the registry only through it, so
the count of accepted connections is every attempt the check made, whatever the protocol;
after `stop()` nothing listens on the port, so a check that tried would fail.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading


class Forwarder:
    def __init__(self, upstream_port: int) -> None:
        self._upstream = ("127.0.0.1", upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._accepted = 0
        self._thread = threading.Thread(target=self._serve, name="forwarder", daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Forwarder:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket: the port refuses connections from now on.

        `close()` alone does not wake a thread blocked in `accept()` on Linux; `shutdown()` does
        (accept fails with EINVAL), so the serving thread ends at once.
        """
        with contextlib.suppress(OSError):  # already shut down
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive(), "the forwarder's accept loop did not end"

    def take_count(self) -> int:
        """Connections accepted since the last call."""
        with self._lock:
            count, self._accepted = self._accepted, 0
        return count

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._accepted += 1
            threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _forward(self, client: socket.socket) -> None:
        with client, socket.create_connection(self._upstream) as upstream:
            peers = {client: upstream, upstream: client}
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

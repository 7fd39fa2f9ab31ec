"""A scripted fake registry for the faults a real registry cannot produce on demand.

``FaultRegistry`` is a ``ThreadingHTTPServer`` on a loopback address (port 0) speaking HTTP/1.1
with keep-alive. A test scripts it per ``(method, target)``, where the target is a path, or a
path plus query when pages of one path must differ:

* ``plan(method, target, *actions)`` queues one-shot answers, used in order;
* ``route(method, target, action)`` sets the answer given once the queue is empty.

An action is a ``Reply`` (status, headers, body, and optionally a declared ``Content-Length``
larger than the body: a truncated answer; ``trickle`` sends it a byte at a time), a ``Reset``
(drop the connection without answering), a ``Stall`` (answer nothing until the registry
stops), or a function of the ``SeenRequest`` returning one (an endless pagination, a redirect
naming the request).
A HEAD without a script of its own is answered like the GET route of its path, without the body.
Anything unscripted gets a 404 ``NOT_FOUND`` error naming the request, and ``GET /v2/`` answers
200 until a test routes it elsewhere. Every answer carries
``Docker-Distribution-API-Version: registry/2.0`` unless the reply sets it.

``paginate_to(url)`` scripts the common hostile ``tags/list``: a page whose ``Link`` points to
``url`` (another host, or the page itself). Every request is recorded (``requests_seen`` or
``seen``, and ``count``) so tests can assert how many were sent.
A client's first ``https://`` probe of the ping is answered the way a plain-HTTP server answers
TLS (a plain 400, so the client's handshake fails cleanly) and counted in ``tls_probes``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

from tests.serving import Background

API_VERSION_HEADER: Final = "Docker-Distribution-API-Version"
API_VERSION: Final = "registry/2.0"
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"

_TLS_HANDSHAKE: Final = 0x16
_IDLE_TIMEOUT_SECONDS: Final = 5.0
_PLAIN_400: Final = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 48\r\n"
    b"Connection: close\r\n\r\nClient sent an HTTPS request to an HTTP server.\n"
)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- what the fake can answer ---------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One HTTP answer.

    ``declared_length`` overrides the ``Content-Length`` sent; when it exceeds the body, the
    connection is closed right after the short body (a truncated answer). ``send_length=False``
    omits ``Content-Length`` (and closes the connection after a GET, so the body is delimited).
    ``close`` closes the connection after answering. HEAD answers never carry the body, but
    declare its length like the GET would.
    """

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    declared_length: int | None = None
    send_length: bool = True
    close: bool = False
    trickle: float | None = None
    """Seconds between pieces of the body (or of the whole answer with ``trickle_head``)."""
    trickle_head: bool = False
    trickle_bytes: int = 1
    """Bytes in each trickled piece."""


@dataclass(frozen=True)
class Reset:
    """Drop the connection after reading the request, without a byte of answer.

    ``rst=False`` closes cleanly (FIN: the client sees the server hang up without an answer);
    ``rst=True`` sets ``SO_LINGER`` to 0 first so the close is a TCP reset (ECONNRESET).
    """

    rst: bool = False


@dataclass(frozen=True)
class Stall:
    """Read the request, then answer nothing until the registry stops: a silent server."""


Action = Reply | Reset | Stall | Callable[["SeenRequest"], "Reply | Reset | Stall"]

RESET: Final = Reset()
RST: Final = Reset(rst=True)


def json_reply(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
    payload = json.dumps(body).encode("utf-8")
    return Reply(status, payload, {"Content-Type": "application/json", **(headers or {})})


def registry_error(status: int, code: str, message: str, **headers: str) -> Reply:
    """The distribution spec's error envelope: ``{"errors": [{"code", "message"}]}``."""
    return json_reply({"errors": [{"code": code, "message": message}]}, status, headers)


def empty_reply(status: int, **headers: str) -> Reply:
    """A status with no body at all (``Content-Length: 0``)."""
    return Reply(status, b"", headers)


def rate_limited(retry_after: str | None = "0") -> Reply:
    """429 with ``Retry-After`` in seconds (or without it when ``None``)."""
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return registry_error(429, "TOOMANYREQUESTS", "too many requests", **headers)


def unavailable(status: int = 503) -> Reply:
    """A 5xx or 408 answer, with the kind of body registries and proxies send."""
    return registry_error(status, "UNAVAILABLE", f"status {status} from the fault registry")


def truncated(body: bytes, declared_length: int, **headers: str) -> Reply:
    """Declare ``declared_length`` bytes, send ``body`` (shorter), then close the connection."""
    if declared_length <= len(body):
        raise ValueError("a truncated reply declares more bytes than it sends")
    return Reply(
        200,
        body,
        {"Content-Type": "application/octet-stream", **headers},
        declared_length=declared_length,
    )


def blob_reply(data: bytes) -> Reply:
    """A blob as a registry serves it; serve it under any digest to make it lie."""
    return Reply(
        200,
        data,
        {"Content-Type": "application/octet-stream", "Docker-Content-Digest": sha256_digest(data)},
    )


def manifest_reply(
    body: bytes,
    media_type: str | None = OCI_MANIFEST,
    *,
    digest: str | None = "",
    send_length: bool = True,
) -> Reply:
    """A manifest answer for HEAD or GET.

    ``digest=""`` (the default) sends the body's real sha256 as ``Docker-Content-Digest``,
    ``digest=None`` leaves the header out, any other string is sent as is. ``media_type=None``
    leaves out ``Content-Type``; ``send_length=False`` leaves out ``Content-Length``.
    """
    headers: dict[str, str] = {}
    if media_type is not None:
        headers["Content-Type"] = media_type
    if digest is not None:
        headers["Docker-Content-Digest"] = digest or sha256_digest(body)
    return Reply(200, body, headers, send_length=send_length)


def tags_reply(name: str, tags: Sequence[str], *, next_url: str | None = None) -> Reply:
    """One page of ``tags/list``; ``next_url`` becomes ``Link: <next_url>; rel="next"``."""
    headers = {"Link": f'<{next_url}>; rel="next"'} if next_url else {}
    return json_reply({"name": name, "tags": list(tags)}, headers=headers)


def bearer_challenge(realm: str, service: str = "fault-registry") -> Reply:
    """401 asking for a Bearer token from ``realm``."""
    return registry_error(
        401,
        "UNAUTHORIZED",
        "authentication required",
        **{"WWW-Authenticate": f'Bearer realm="{realm}",service="{service}"'},
    )


def tags_path(repository: str) -> str:
    return f"/v2/{repository}/tags/list"


def manifest_path(repository: str, reference: str) -> str:
    return f"/v2/{repository}/manifests/{reference}"


def blob_path(repository: str, digest: str) -> str:
    return f"/v2/{repository}/blobs/{digest}"


# -- what the fake saw ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SeenRequest:
    """One request that reached the fake; header names are lower-case."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    server: str
    """``host:port`` of the listening address the request arrived at."""

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


# -- the server -----------------------------------------------------------------------------------


class FaultRegistry:
    """The scripted registry; use as a context manager or ``start()``/``stop()``."""

    def __init__(self, bind: str = "127.0.0.1") -> None:
        self._lock = threading.Lock()
        self._plans: dict[tuple[str, str], deque[Action]] = {}
        self._routes: dict[tuple[str, str], Action] = {}
        self._requests: list[SeenRequest] = []
        self._tls_probes = 0
        self._server_errors: list[BaseException] = []
        self._live: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._bind = bind
        self._server = _FaultHTTPServer(self, bind)
        self._serving = Background(self._server, f"fault-registry-{self.port}")
        self.route("GET", "/v2/", json_reply({}))

    # -- lifecycle

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        """``ip:port``, the registry name a client is given."""
        return f"{self._bind}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> FaultRegistry:
        self._serving.start()
        return self

    def stop(self) -> None:
        """Stop listening and hang up on keep-alive connections a client left open."""
        self._stopping.set()
        self._serving.stop()
        with self._lock:
            live = list(self._live)
        for connection in live:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()

    def __enter__(self) -> FaultRegistry:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- scripting

    def plan(self, method: str, target: str, *actions: Action) -> None:
        """Queue one-shot answers for ``method`` on ``target`` (a path, or path?query)."""
        with self._lock:
            self._plans.setdefault((method.upper(), target), deque()).extend(actions)

    def route(self, method: str, target: str, action: Action) -> None:
        """The answer for ``method`` on ``target`` whenever no planned one is left."""
        with self._lock:
            self._routes[(method.upper(), target)] = action

    def paginate_to(
        self, next_url: str, tags: Sequence[str] = ("a",), *, target: str | None = None
    ) -> None:
        """Answer ``GET target`` with one tags page whose ``Link`` points to ``next_url``.

        ``target`` defaults to the path of ``next_url``: the same path on another host, or on
        this one a page that points to itself (a pagination loop).
        """
        path = target or urlsplit(next_url).path
        name = urlsplit(path).path.removeprefix("/v2/").removesuffix("/tags/list")
        self.route("GET", path, tags_reply(name, tags, next_url=next_url))

    def pending(self, method: str, target: str) -> int:
        """Planned answers not yet used."""
        with self._lock:
            return len(self._plans.get((method.upper(), target), ()))

    # -- observations

    @property
    def requests_seen(self) -> list[SeenRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def seen(self) -> list[SeenRequest]:
        """Same as ``requests_seen``."""
        return self.requests_seen

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """Requests seen with this method (any when None) on this path (query ignored)."""
        return sum(
            1
            for r in self.requests_seen
            if (method is None or r.method == method.upper()) and (path is None or r.path == path)
        )

    @property
    def tls_probes(self) -> int:
        with self._lock:
            return self._tls_probes

    @property
    def server_errors(self) -> list[BaseException]:
        """Exceptions the handler raised other than network noise: a bug in the fake."""
        with self._lock:
            return list(self._server_errors)

    # -- used by the handler

    def _record(self, request: SeenRequest) -> Action:
        with self._lock:
            self._requests.append(request)
            return self._action_for(request.method, request.path, request.target)

    def _action_for(self, method: str, path: str, target: str) -> Action:
        candidates = [target, path] if target != path else [path]
        for key in candidates:
            queue = self._plans.get((method, key))
            if queue:
                return queue.popleft()
            if (method, key) in self._routes:
                return self._routes[(method, key)]
        if method == "HEAD":
            for key in candidates:
                if ("GET", key) in self._routes:
                    return self._routes[("GET", key)]
        return registry_error(404, "NOT_FOUND", f"no answer scripted for {method} {target}")

    def _tls_probe(self) -> None:
        with self._lock:
            self._tls_probes += 1

    def _track(self, connection: socket.socket, live: bool) -> None:
        with self._lock:
            if live:
                self._live.add(connection)
            else:
                self._live.discard(connection)

    def _server_error(self, error: BaseException) -> None:
        with self._lock:
            self._server_errors.append(error)


class _FaultHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, registry: FaultRegistry, bind: str) -> None:
        super().__init__((bind, 0), _FaultHandler)
        self.registry = registry

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Network noise (a client hanging up) is expected; anything else is kept for tests."""
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, OSError):
            self.registry._server_error(error)


class _FaultHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = _IDLE_TIMEOUT_SECONDS
    server: _FaultHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK stall every small answer by tens of milliseconds.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.registry._track(self.connection, live=True)

    def finish(self) -> None:
        self.server.registry._track(self.connection, live=False)
        super().finish()

    def handle(self) -> None:
        """Answer a TLS ClientHello the way a plain-HTTP server does; else speak HTTP."""
        try:
            first = self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return
        if first and first[0] == _TLS_HANDSHAKE:
            self._refuse_tls()
            return
        super().handle()

    def _refuse_tls(self) -> None:
        # Read the whole ClientHello record first: closing with unread bytes would send a
        # TCP reset, which a client may take for a transient fault and retry.
        header = self.rfile.read(5)
        if len(header) == 5:
            self.rfile.read(int.from_bytes(header[3:5], "big"))
        self.server.registry._tls_probe()
        with contextlib.suppress(OSError):
            self.wfile.write(_PLAIN_400)
        self.close_connection = True

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``requests_seen``."""

    def _serve(self) -> None:
        split = urlsplit(self.path)
        address = self.connection.getsockname()
        seen = SeenRequest(
            method=self.command,
            path=split.path,
            query=split.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self._read_body(),
            server=f"{address[0]}:{address[1]}",
        )
        action = self.server.registry._record(seen)
        if not isinstance(action, Reply | Reset | Stall):
            action = action(seen)
        try:
            if isinstance(action, Reset):
                self._reset(action)
            elif isinstance(action, Stall):
                self.server.registry._stopping.wait()
                self.close_connection = True
            else:
                self._answer(action)
        except OSError:
            # The client went away mid-answer (e.g. it refused an oversize body).
            self.close_connection = True

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self, reply: Reply) -> None:
        head = self.command == "HEAD"
        if reply.trickle is not None:
            self._trickle(reply, head)
            return
        self.send_response(reply.status)
        headers = {API_VERSION_HEADER: API_VERSION, **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        length = len(reply.body) if reply.declared_length is None else reply.declared_length
        short = length > len(reply.body)
        if reply.send_length:
            self.send_header("Content-Length", str(length))
        elif not head:
            self.send_header("Connection", "close")
        if reply.close:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(reply.body)
        if short or reply.close or (not reply.send_length and not head):
            self.close_connection = True

    def _trickle(self, reply: Reply, head: bool) -> None:
        """The answer ``trickle_bytes`` at a time every ``trickle`` seconds (the head at once
        unless ``trickle_head``), until sent or the client hangs up."""
        assert reply.trickle is not None
        lines = [f"HTTP/1.1 {reply.status} Trickle"]
        headers = {API_VERSION_HEADER: API_VERSION, **reply.headers}
        headers.setdefault("Content-Length", str(len(reply.body)))
        lines += [f"{name}: {value}" for name, value in headers.items()]
        head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        body = b"" if head else reply.body
        slow = head_bytes + body if reply.trickle_head else body
        if not reply.trickle_head:
            self.wfile.write(head_bytes)
            self.wfile.flush()
        step = reply.trickle_bytes
        for index in range(0, len(slow), step):
            self.wfile.write(slow[index : index + step])
            self.wfile.flush()
            time.sleep(reply.trickle)
        self.close_connection = True

    def _reset(self, reset: Reset) -> None:
        self.close_connection = True
        if reset.rst:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # The buffered reader holds a reference that defers the real close; drop it first.
            self.rfile.close()
            self.connection.close()
        else:
            self.connection.shutdown(socket.SHUT_RDWR)

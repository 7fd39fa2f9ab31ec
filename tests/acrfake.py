"""A stand-in for Azure: App Service's managed-identity endpoint and ACR's token endpoints.

ACR has no local server, so here (and only here) the suite plays the cloud itself: one HTTP
server answers `GET /msi/token` as App Service's `IDENTITY_ENDPOINT` does, ACR's challenge with
a `tenant`, `POST /oauth2/exchange` and `/oauth2/token`, and forwards every other `/v2/`
request, once its bearer token checks out, to a real docker-registry behind it.
"""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ACR_USERNAME = "00000000-0000-0000-0000-000000000000"
HOP_HEADERS = frozenset({"connection", "transfer-encoding", "keep-alive", "content-length"})


@dataclass
class AcrFake:
    """What the fake expects and what it saw; `start()` serves it on 127.0.0.1."""

    backend: str
    """host:port of the plain docker-registry behind the fake."""
    tenant: str = "regwatch-tenant"
    identity_header: str = field(default_factory=lambda: secrets.token_hex(8))
    aad_token: str = field(default_factory=lambda: "aad-" + secrets.token_hex(8))
    refresh_token: str = field(default_factory=lambda: "acr-refresh-" + secrets.token_hex(8))
    access_token: str = field(default_factory=lambda: "acr-access-" + secrets.token_hex(8))
    identity_requests: list[dict[str, list[str]]] = field(default_factory=list)
    exchanges: list[dict[str, list[str]]] = field(default_factory=list)
    challenges: int = 0
    host: str = ""

    def start(self) -> AcrFake:
        fake = self

        class Handler(_Handler):
            state = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def identity_endpoint(self) -> str:
        return f"http://{self.host}/msi/token"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    state: AcrFake
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read what the fake recorded instead."""

    def do_GET(self) -> None:
        self._route()

    def do_HEAD(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def do_PUT(self) -> None:
        self._route()

    def do_PATCH(self) -> None:
        self._route()

    def do_DELETE(self) -> None:
        self._route()

    def _route(self) -> None:
        path = urlsplit(self.path).path
        body = self._body()
        if path == "/msi/token":
            self._identity()
        elif path == "/oauth2/exchange":
            self._exchange(body)
        elif path == "/oauth2/token":
            self._token(body)
        elif self.headers.get("Authorization") != f"Bearer {self.state.access_token}":
            if path == "/v2/" and "Authorization" not in self.headers:
                self.state.challenges += 1
            challenge = (
                f'Bearer realm="http://{self.state.host}/oauth2/token",'
                f'service="{self.state.host}",tenant="{self.state.tenant}"'
            )
            self._reply(401, {"errors": [{"code": "UNAUTHORIZED"}]}, challenge)
        else:
            self._forward(body)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _identity(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        self.state.identity_requests.append(query)
        if self.headers.get("X-IDENTITY-HEADER") != self.state.identity_header:
            self._reply(401, {"error": "invalid_request", "error_description": "bad header"})
            return
        self._reply(
            200,
            {
                "access_token": self.state.aad_token,
                "expires_on": "4102444800",
                "resource": query.get("resource", [""])[0],
                "token_type": "Bearer",
            },
        )

    def _exchange(self, body: bytes) -> None:
        form = parse_qs(body.decode())
        self.state.exchanges.append(form)
        expected = {
            "grant_type": ["access_token"],
            "service": [self.state.host],
            "tenant": [self.state.tenant],
            "access_token": [self.state.aad_token],
        }
        if form != expected:
            self._reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad exchange"}]})
            return
        self._reply(200, {"refresh_token": self.state.refresh_token})

    def _token(self, body: bytes) -> None:
        basic = base64.b64encode(f"{ACR_USERNAME}:{self.state.refresh_token}".encode()).decode()
        form = parse_qs(body.decode())
        if self.headers.get("Authorization") == f"Basic {basic}" or form.get("refresh_token") == [
            self.state.refresh_token
        ]:
            self._reply(200, {"access_token": self.state.access_token, "expires_in": 3600})
            return
        self._reply(401, {"errors": [{"code": "UNAUTHORIZED"}]})

    def _forward(self, body: bytes) -> None:
        upstream = http.client.HTTPConnection(self.state.backend, timeout=30)
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in HOP_HEADERS and k.lower() not in ("authorization", "host")
        }
        upstream.request(self.command, self.path, body=body or None, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        upstream.close()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() in HOP_HEADERS:
                continue
            self.send_header(name, value.replace(self.state.backend, self.state.host))
        length = answer.getheader("Content-Length") or "0"
        self.send_header("Content-Length", length if self.command == "HEAD" else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _reply(self, status: int, document: Any, challenge: str | None = None) -> None:
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if challenge:
            self.send_header("WWW-Authenticate", challenge)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

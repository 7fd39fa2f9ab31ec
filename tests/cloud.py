"""Local stand-ins for the clouds: moto's server for ECR and STS, and a CONNECT proxy.

The ECR registry's name (`<account>.dkr.ecr.<region>.amazonaws.com`, port 443) cannot point at a
local registry by itself. The tests set `HTTPS_PROXY` to `ConnectProxy`, which tunnels a CONNECT
for such a name to the docker-registry playing it; TLS runs end to end through the tunnel and is
checked against that name. regwatch needs no seam of its own for this: any HTTPS proxy works so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.processes import start_on_free_port, stop_process
from tests.tcp import Listener, pipe

READY_TIMEOUT_SECONDS = 20.0


def moto_server_bin() -> str:
    """moto's server script (the `moto[server]` test extra); fails under CI when missing."""
    found = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    if Path(found).exists():
        return found
    message = "moto_server is not installed (PyPI package 'moto[server]', the test extra)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must run the ECR tests, not skip them")
    pytest.skip(message)


@dataclass(frozen=True)
class MotoServer:
    url: str
    process: subprocess.Popen[bytes] = field(repr=False)

    def stop(self) -> None:
        stop_process(self.process)


def start_moto(workdir: Path) -> MotoServer:
    def command(port: int) -> list[str]:
        return [moto_server_bin(), "-H", "127.0.0.1", "-p", str(port)]

    def ready(process: subprocess.Popen[bytes], port: int) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(requests.RequestException):
                requests.get(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
                return True
            time.sleep(0.05)
        return False

    process, port = start_on_free_port("moto_server", workdir, workdir / "moto.log", command, ready)
    return MotoServer(f"http://127.0.0.1:{port}", process)


class ConnectProxy(Listener):
    """An HTTPS proxy that tunnels `CONNECT host:443` to the local port `routes[host]` plays."""

    def __init__(self, routes: Mapping[str, int]) -> None:
        super().__init__()
        self.routes = dict(routes)
        self.url = f"http://127.0.0.1:{self.port}"
        self.tunnels: list[str] = []

    def handle(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        method, target, *_ = head.split(b"\r\n", 1)[0].decode().split()
        host, _, port = target.rpartition(":")
        if method != "CONNECT" or port != "443" or host not in self.routes:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        self.tunnels.append(host)
        with socket.create_connection(("127.0.0.1", self.routes[host])) as upstream:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            pipe(client, upstream)

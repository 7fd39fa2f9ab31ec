"""A real notary-server on 127.0.0.1 (TLS from a CA made here, memory storage) and the real
`notary` client, for the content-trust tests.

The server signs snapshots and timestamps itself (`"trust_service": {"type": "local"}`), as
Docker Hub's does for `docker trust`. The client is the independent witness: what it lists is
what any Docker Content Trust client would accept.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.registries import _LIVE_PROCESSES, _stop_process, _tail, free_port, write_tls_files

READY_TIMEOUT_SECONDS = 10.0
KEY_PASSPHRASE = "correct horse battery staple"


@dataclass(frozen=True, kw_only=True)
class NotaryServer:
    url: str
    ca_pem: str
    ca_path: Path
    workdir: Path
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False, compare=False)

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def stop(self) -> None:
        _stop_process(self.process)


def start_notary_server(
    server_bin: str, workdir: Path, auth: Mapping[str, Any] | None = None
) -> NotaryServer:
    """notary-server with TLS and memory storage on a free port; `auth` is its `auth` section."""
    tls = write_tls_files(workdir)
    config_path = workdir / "server.json"
    log_path = workdir / "notary-server.log"
    for _attempt in range(3):
        port = free_port()
        config: dict[str, Any] = {
            "server": {
                "http_addr": f"127.0.0.1:{port}",
                "tls_cert_file": str(tls.cert_path),
                "tls_key_file": str(tls.key_path),
            },
            "trust_service": {"type": "local"},
            "storage": {"backend": "memory"},
            "logging": {"level": "info"},
        }
        if auth is not None:
            config["auth"] = dict(auth)
        config_path.write_text(json.dumps(config))
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [server_bin, "-config", str(config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
            )
        _LIVE_PROCESSES.add(process)
        url = f"https://127.0.0.1:{port}"
        if _ready(process, url, str(tls.ca_path)):
            return NotaryServer(
                url=url,
                ca_pem=tls.ca_pem,
                ca_path=tls.ca_path,
                workdir=workdir,
                log_path=log_path,
                process=process,
            )
        _stop_process(process)
        if "address already in use" not in _tail(log_path, 5):
            break
    pytest.fail(f"notary-server did not start; log tail:\n{_tail(log_path, 40)}")


def _ready(process: subprocess.Popen[bytes], url: str, ca_path: str) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with requests.get(f"{url}/_notary_server/health", verify=ca_path, timeout=1) as answer:
                if answer.status_code == 200:
                    return True
        except requests.RequestException:
            pass
        time.sleep(0.02)
    return False


@dataclass(frozen=True)
class NotaryClient:
    """The `notary` command line for one server, with a trust directory of its own."""

    binary: str
    server: NotaryServer
    trust_dir: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "NOTARY_ROOT_PASSPHRASE": KEY_PASSPHRASE,
            "NOTARY_TARGETS_PASSPHRASE": KEY_PASSPHRASE,
            "NOTARY_SNAPSHOT_PASSPHRASE": KEY_PASSPHRASE,
            "NOTARY_DELEGATION_PASSPHRASE": KEY_PASSPHRASE,
        }
        command = [
            self.binary,
            "-s",
            self.server.url,
            "--tlscacert",
            str(self.server.ca_path),
            "-d",
            str(self.trust_dir),
            *args,
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=120, check=False, env=env
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed: {done.stdout}{done.stderr}")
        return done

    def generate_key(self, role: str = "targets") -> str:
        """A new ECDSA key as `notary key generate -o` writes it: an encrypted PEM."""
        return Path(f"{self.generate_key_pair(role)}-key.pem").read_text()

    def generate_key_pair(self, role: str) -> Path:
        """A new ECDSA key pair: `PREFIX-key.pem` (encrypted) and `PREFIX.pem` (public)."""
        prefix = self.trust_dir / f"generated-{time.monotonic_ns()}"
        self.trust_dir.mkdir(parents=True, exist_ok=True)
        self.run("key", "generate", "ecdsa", "--role", role, "-o", str(prefix))
        return prefix

    def initialise(self, gun: str) -> str:
        """`docker trust`'s way: init with a server-managed snapshot key, publish; returns the
        targets key as the trust directory holds it."""
        self.run("init", gun)
        self.run("key", "rotate", gun, "snapshot", "-r")
        self.run("publish", gun)
        for path in (self.trust_dir / "private").glob("*.key"):
            text = path.read_text()
            if "role: targets" in text and f"gun: {gun}" in text:
                return text
        raise AssertionError(f"no targets key for {gun} in {self.trust_dir}")

    def targets(self, gun: str) -> dict[str, tuple[str, int, str]]:
        """`notary list GUN` as {tag: (sha256 hex, size, role)}, read by a fresh client."""
        listed = [line for line in self.run("list", gun).stdout.splitlines() if line.strip()]
        if listed == ["No targets present in this repository."]:
            return {}
        found = {}
        for line in listed[2:]:
            name, digest, size, role = line.split()
            found[name] = (digest, int(size), role)
        return found

"""A real notary-server on 127.0.0.1 (TLS from a CA made here, memory storage) and the real
`notary` client, for the content-trust tests.

The server signs snapshots and timestamps itself (`"trust_service": {"type": "local"}`), as
Docker Hub's does for `docker trust`. The client is the independent witness: what it lists is
what any Docker Content Trust client would accept.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.processes import log_tail, start_on_free_port, stop_process
from tests.registries import TlsFiles, write_tls_files
from tests.tokenservice import TokenService

READY_TIMEOUT_SECONDS = 10.0
TOKEN_ISSUER = "regwatch-notary-issuer"
SIGNER = "signer"
KEY_PASSPHRASE = "correct horse battery staple"


@dataclass(frozen=True, kw_only=True)
class NotaryServer:
    """A running notary-server; `username`/`password` are set when it wants tokens from
    `token_service`, `client_certificate` when it wants a TLS client certificate."""

    url: str
    ca_pem: str
    ca_path: Path
    workdir: Path
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False, compare=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token_service: TokenService | None = field(default=None, repr=False, compare=False)
    client_certificate: tuple[str, str] | None = field(default=None, repr=False)

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def stop(self) -> None:
        stop_process(self.process)
        if self.token_service is not None:
            self.token_service.stop()


def start_token_notary_server(server_bin: str, workdir: Path) -> NotaryServer:
    """notary-server that takes Bearer tokens from a `TokenService` (over HTTPS, with the
    server's own certificate) knowing one user, as Docker Hub's notary takes the hub's."""
    tls = write_tls_files(workdir)
    password = secrets.token_urlsafe(16)
    service = TokenService(
        issuer=TOKEN_ISSUER,
        service="notary-server",
        users={SIGNER: password},
        tls=(tls.cert_path, tls.key_path),
    ).start()
    bundle = workdir / "token-signer.pem"
    bundle.write_text(service.certificate_pem)
    auth = {
        "type": "token",
        "options": {
            "realm": service.realm,
            "service": "notary-server",
            "issuer": TOKEN_ISSUER,
            "rootcertbundle": str(bundle),
        },
    }
    try:
        server = start_notary_server(server_bin, workdir, tls=tls, auth=auth)
    except BaseException:
        service.stop()
        raise
    return replace(server, username=SIGNER, password=password, token_service=service)


def start_client_cert_notary_server(server_bin: str, workdir: Path) -> NotaryServer:
    """notary-server that admits only clients presenting a certificate from its client CA."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "regwatch client CA")])
    now = dt.datetime.now(dt.UTC)
    ca = (
        _certificate(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "regwatch signer")])
    client = (
        _certificate(client_name, ca_name, client_key.public_key(), now)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = workdir / "client-ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pem = client.public_bytes(serialization.Encoding.PEM).decode("ascii")
    key = client_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    client_files = _client_files(workdir, (pem, key))
    server = start_notary_server(server_bin, workdir, client_ca=ca_path, probe_cert=client_files)
    return replace(server, client_certificate=(pem, key))


def _client_files(directory: Path, certificate: tuple[str, str]) -> tuple[str, str]:
    cert_path, key_path = directory / "client.cert", directory / "client.key"
    cert_path.write_text(certificate[0])
    key_path.write_text(certificate[1])
    key_path.chmod(0o600)
    return str(cert_path), str(key_path)


def _certificate(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey, now: dt.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
    )


def start_notary_server(
    server_bin: str,
    workdir: Path,
    *,
    tls: TlsFiles | None = None,
    auth: Mapping[str, Any] | None = None,
    client_ca: Path | None = None,
    probe_cert: tuple[str, str] | None = None,
) -> NotaryServer:
    """notary-server with TLS and memory storage on a free port; `auth` is its `auth` section,
    `client_ca` the CA a client's certificate must come from."""
    tls = tls or write_tls_files(workdir)
    config_path = workdir / "server.json"
    log_path = workdir / "notary-server.log"

    def command(port: int) -> list[str]:
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
        if client_ca is not None:
            config["server"]["client_ca_file"] = str(client_ca)
        config_path.write_text(json.dumps(config))
        return [server_bin, "-config", str(config_path)]

    def ready(process: subprocess.Popen[bytes], port: int) -> bool:
        return _ready(process, f"https://127.0.0.1:{port}", str(tls.ca_path), probe_cert)

    process, port = start_on_free_port("notary-server", workdir, log_path, command, ready)
    return NotaryServer(
        url=f"https://127.0.0.1:{port}",
        ca_pem=tls.ca_pem,
        ca_path=tls.ca_path,
        workdir=workdir,
        log_path=log_path,
        process=process,
    )


def _ready(
    process: subprocess.Popen[bytes], url: str, ca_path: str, cert: tuple[str, str] | None
) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            health = f"{url}/_notary_server/health"
            with requests.get(health, verify=ca_path, cert=cert, timeout=1) as answer:
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
        if self.server.username:
            login = f"{self.server.username}:{self.server.password}".encode()
            env["NOTARY_AUTH"] = base64.b64encode(login).decode("ascii")
        config = []
        if self.server.client_certificate is not None:
            self.trust_dir.mkdir(parents=True, exist_ok=True)
            cert, key = _client_files(self.trust_dir, self.server.client_certificate)
            remote = {"tls_client_cert": cert, "tls_client_key": key}
            (self.trust_dir / "config.json").write_text(json.dumps({"remote_server": remote}))
            config = ["-c", str(self.trust_dir / "config.json")]
        command = [
            self.binary,
            *config,
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

    def initialise(self, gun: str, *, server_snapshot: bool = True) -> str:
        """`docker trust`'s way (`server_snapshot`): init with a snapshot key the server
        manages, publish; returns the targets key as the trust directory holds it."""
        self.run("init", gun)
        if server_snapshot:
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

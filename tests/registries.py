"""Start real docker-registry processes on 127.0.0.1 for the tests.

Fakes cannot tell us how a real registry negotiates auth, TLS and uploads, so the suite runs
Debian's docker-registry (distribution 2.8) in three flavours: plain HTTP, TLS with htpasswd
Basic auth (CA made here), and plain HTTP with Bearer tokens from our own ``TokenService``.
Every server gets a fresh port and a fresh storage directory, and is stopped by PID.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.processes import log_tail, start_on_free_port, stop_process
from tests.tokenservice import TokenService

RegistryKind = Literal["plain", "tls", "token"]

HTPASSWD_REALM = "regwatch-test"
TLS_USERNAME = "alice"
TOKEN_USERNAME = "bob"
TOKEN_SERVICE_NAME = "regwatch-test-registry"
TOKEN_ISSUER = "regwatch-test-issuer"

READY_TIMEOUT_SECONDS = 10.0

# Where a missing tool comes from, so a skip or failure says what to install.
_DEBIAN_PACKAGES = {
    "docker-registry": "docker-registry",
    "htpasswd": "apache2-utils",
    "notary": "notary",
    "notary-server": "notary",
}


def require_tool(name: str) -> str:
    """Path of an executable; skip without it locally, but fail under CI so nothing hides."""
    path = shutil.which(name)
    if path is not None:
        return path
    package = _DEBIAN_PACKAGES.get(name, name)
    message = f"{name} is not installed (Debian package {package!r})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must run the registry tests, not skip them")
    pytest.skip(message)


# -- TLS material -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """PEM files written for one TLS registry."""

    ca_pem: str
    ca_path: Path
    cert_path: Path
    key_path: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "regwatch tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def write_tls_files(directory: Path, names: Sequence[str] = ()) -> TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost (and `names`) signed by it.

    EC P-256 keeps generation instant; the extensions are the ones strict verifiers insist on.
    """
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("regwatch test CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost"),
                    *(x509.DNSName(name) for name in names),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    files = TlsFiles(
        ca_pem=ca_pem,
        ca_path=directory / "ca.pem",
        cert_path=directory / "server.pem",
        key_path=directory / "server-key.pem",
    )
    files.ca_path.write_text(ca_pem)
    files.cert_path.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    files.key_path.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.key_path.chmod(0o600)
    return files


# -- the registry process -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RegistryServer:
    """A running docker-registry and everything a test needs to talk to it.

    ``username``/``password`` are alice's htpasswd credentials for "tls" and bob's token-service
    credentials for "token"; ``token_service`` is only set for "token".
    """

    kind: RegistryKind
    host: str
    scheme: Literal["http", "https"]
    url: str
    root: Path
    workdir: Path
    config_path: Path
    log_path: Path
    ca_pem: str | None = None
    ca_path: Path | None = None
    username: str | None = None
    password: str | None = None
    token_service: TokenService | None = field(default=None, repr=False, compare=False)
    process: subprocess.Popen[bytes] = field(repr=False, compare=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        """The end of the registry's log, for failure messages."""
        return log_tail(self.log_path, lines)

    def stop(self) -> None:
        """Stop the registry (terminate, then kill) and its token service; safe to call twice."""
        stop_process(self.process)
        if self.token_service is not None:
            self.token_service.stop()


def _registry_config(root: Path, port: int, extra: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "version": "0.1",
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def _answers_as_registry(
    scheme: str, verify: str | bool, log_path: Path
) -> Callable[[subprocess.Popen[bytes], int], bool]:
    """Poll ``GET /v2/`` until the registry answers (200 or 401 alike); give up if it dies.

    An answer only counts when it carries ``Docker-Distribution-API-Version``: if another process
    owns the port, our registry is about to exit, and the stranger must not pass for it.
    """

    def ready(process: subprocess.Popen[bytes], port: int) -> bool:
        url = f"{scheme}://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        last_error = "no answer"
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                with requests.get(f"{url}/v2/", verify=verify, timeout=1) as response:
                    if "Docker-Distribution-API-Version" in response.headers:
                        return True
                    last_error = f"HTTP {response.status_code} without the registry's API header"
            except requests.RequestException as exc:
                last_error = repr(exc)
            time.sleep(0.02)
        stop_process(process)
        pytest.fail(
            f"docker-registry at {url} not ready after {READY_TIMEOUT_SECONDS:.0f} s "
            f"(last probe: {last_error}); log tail:\n{log_tail(log_path)}"
        )

    return ready


def _launch(
    kind: RegistryKind,
    *,
    registry_bin: str,
    workdir: Path,
    extra_config: dict[str, Any],
    scheme: Literal["http", "https"],
    verify: str | bool,
    **fields: Any,
) -> RegistryServer:
    """Write the config for the port, start the process and wait for it."""
    root = workdir / "storage"
    root.mkdir(exist_ok=True)
    config_path = workdir / "config.yml"
    log_path = workdir / "registry.log"

    def command(port: int) -> list[str]:
        config_path.write_text(yaml.safe_dump(_registry_config(root, port, extra_config)))
        return [registry_bin, "serve", str(config_path)]

    ready = _answers_as_registry(scheme, verify, log_path)
    process, port = start_on_free_port("docker-registry", workdir, log_path, command, ready)
    host = f"127.0.0.1:{port}"
    return RegistryServer(
        kind=kind,
        host=host,
        scheme=scheme,
        url=f"{scheme}://{host}",
        root=root,
        workdir=workdir,
        config_path=config_path,
        log_path=log_path,
        process=process,
        **fields,
    )


def start_plain_registry(registry_bin: str, workdir: Path) -> RegistryServer:
    """Plain HTTP, no auth: the simplest registry a client can meet."""
    return _launch(
        "plain",
        registry_bin=registry_bin,
        workdir=workdir,
        extra_config={},
        scheme="http",
        verify=True,
    )


def start_tls_registry(
    registry_bin: str,
    htpasswd_bin: str,
    workdir: Path,
    *,
    username: str = TLS_USERNAME,
    password: str | None = None,
    names: Sequence[str] = (),
) -> RegistryServer:
    """HTTPS with a private CA (its certificate also for `names`) plus htpasswd Basic auth for
    one user (alice, a random password, unless given; the registry wants bcrypt)."""
    tls = write_tls_files(workdir, names)
    # Never "-…", which argv would take for a flag.
    password = password or "pw-" + secrets.token_urlsafe(16)
    htpasswd_path = workdir / "htpasswd"
    subprocess.run(
        [htpasswd_bin, "-Bbc", str(htpasswd_path), username, password],
        check=True,
        capture_output=True,
    )
    return _launch(
        "tls",
        registry_bin=registry_bin,
        workdir=workdir,
        extra_config={
            "http": {"tls": {"certificate": str(tls.cert_path), "key": str(tls.key_path)}},
            "auth": {"htpasswd": {"realm": HTPASSWD_REALM, "path": str(htpasswd_path)}},
        },
        scheme="https",
        verify=str(tls.ca_path),
        ca_pem=tls.ca_pem,
        ca_path=tls.ca_path,
        username=username,
        password=password,
    )


def start_ecr_registry(
    registry_bin: str, htpasswd_bin: str, workdir: Path, host: str, password: str
) -> RegistryServer:
    """The ECR registry `host` (`<account>.dkr.ecr.<region>.amazonaws.com`, in its certificate),
    Basic auth for user `AWS`. A client reaches it through `tests.cloud.ConnectProxy` as if it
    were that host on port 443."""
    return start_tls_registry(
        registry_bin, htpasswd_bin, workdir, username="AWS", password=password, names=[host]
    )


def start_token_registry(registry_bin: str, workdir: Path) -> RegistryServer:
    """Plain HTTP with Bearer tokens from a ``TokenService`` that knows bob."""
    password = "pw-" + secrets.token_urlsafe(16)  # never "-…", which argv would take for a flag
    service = TokenService(
        issuer=TOKEN_ISSUER, service=TOKEN_SERVICE_NAME, users={TOKEN_USERNAME: password}
    ).start()
    bundle_path = workdir / "token-signer.pem"
    bundle_path.write_text(service.certificate_pem)
    try:
        return _launch(
            "token",
            registry_bin=registry_bin,
            workdir=workdir,
            extra_config={
                "auth": {
                    "token": {
                        "realm": service.realm,
                        "service": TOKEN_SERVICE_NAME,
                        "issuer": TOKEN_ISSUER,
                        "rootcertbundle": str(bundle_path),
                    }
                }
            },
            scheme="http",
            verify=True,
            username=TOKEN_USERNAME,
            password=password,
            token_service=service,
        )
    except BaseException:
        service.stop()
        raise

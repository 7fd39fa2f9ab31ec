"""Shared fixtures: real registries and PostgreSQL started once per session, a clean environment.

The machinery lives in ``tests.registries`` and ``tests.postgres``; this file wires it into pytest.
"""

from __future__ import annotations

import compileall
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from tests.notary import (
    NotaryServer,
    start_client_cert_notary_server,
    start_notary_server,
    start_token_notary_server,
)
from tests.postgres import ExternalPostgres, PostgresCluster, start_postgres
from tests.registries import (
    RegistryServer,
    require_tool,
    start_plain_registry,
    start_tls_registry,
    start_token_registry,
)
from tests.resource_image import build as image_build

# Variables that would let a developer's own setup leak into a test (credentials, proxies).
# REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE stay: the machine sets them and the code must cope.
_SCRUBBED_VARIABLES = (
    "DOCKER_CONFIG",
    "REGWATCH_USERNAME",
    "REGWATCH_PASSWORD",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "NO_PROXY",
    "no_proxy",
)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile regwatch to bytecode once, as pip does when it installs a wheel.

    The suite starts `regwatch` as a child process hundreds of times. Where
    PYTHONDONTWRITEBYTECODE is set (as on the project's machines) and regwatch is installed
    editable, no child would ever write its bytecode, so each would compile every module it
    imports again.
    """
    compileall.compile_dir(Path(__file__).resolve().parents[1] / "regwatch", quiet=1)


class _Server(Protocol):
    def stop(self) -> None: ...


_S = TypeVar("_S", bound=_Server)


def _served(server: _S) -> Iterator[_S]:
    """A session fixture's server, stopped when the session ends."""
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def scrub_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Isolate every test from ambient credentials and proxies, and make retries fast."""
    for name in [*(n for n in os.environ if n.startswith("AWS_")), *_SCRUBBED_VARIABLES]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REGWATCH_RETRY_BASE_SECONDS", "0.01")


@pytest.fixture(scope="session")
def plain_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """docker-registry over plain HTTP without auth."""
    server = start_plain_registry(
        require_tool("docker-registry"), tmp_path_factory.mktemp("plain-registry")
    )
    yield from _served(server)


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """docker-registry over HTTPS (suite CA in ``ca_path``) with Basic auth for alice."""
    registry_bin = require_tool("docker-registry")
    htpasswd_bin = require_tool("htpasswd")
    server = start_tls_registry(registry_bin, htpasswd_bin, tmp_path_factory.mktemp("tls-registry"))
    yield from _served(server)


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """docker-registry over HTTP with Bearer tokens; bob and the service are on the server."""
    server = start_token_registry(
        require_tool("docker-registry"), tmp_path_factory.mktemp("token-registry")
    )
    yield from _served(server)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresCluster | ExternalPostgres]:
    """A throw-away cluster on 127.0.0.1, or the server REGWATCH_TEST_POSTGRES_URL names."""
    server = start_postgres()
    yield from _served(server)


@pytest.fixture
def postgres_url(postgres_server: PostgresCluster | ExternalPostgres) -> str:
    """The URL of a PostgreSQL database that is empty and, during this test, this test's alone."""
    return postgres_server.fresh_url()


@pytest.fixture(scope="session")
def notary_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotaryServer]:
    """notary-server over TLS (its CA in ``ca_pem``), memory storage, no auth."""
    server = start_notary_server(
        require_tool("notary-server"), tmp_path_factory.mktemp("notary-server")
    )
    yield from _served(server)


@pytest.fixture(scope="session")
def token_notary_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotaryServer]:
    """notary-server over TLS taking Bearer tokens from an HTTPS token service (user signer)."""
    server = start_token_notary_server(
        require_tool("notary-server"), tmp_path_factory.mktemp("token-notary-server")
    )
    yield from _served(server)


@pytest.fixture(scope="session")
def client_cert_notary_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[NotaryServer]:
    """notary-server over TLS that wants a client certificate (``client_certificate``)."""
    server = start_client_cert_notary_server(
        require_tool("notary-server"), tmp_path_factory.mktemp("client-cert-notary-server")
    )
    yield from _served(server)


def pytest_collection_finish(session: pytest.Session) -> None:
    """A selected image test gets its image built from now on, behind the other tests."""
    if any(item.get_closest_marker("image") for item in session.items):
        image_build.start_early()

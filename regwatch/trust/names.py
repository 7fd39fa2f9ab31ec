"""Which notary server and which collection name (GUN) a repository's signatures go to (§6.7)."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from regwatch.errors import ConfigError
from regwatch.refs import Repository

DOCKER_HUB_NOTARY: Final = "https://notary.docker.io"


def gun_of(repository: Repository) -> str:
    """`docker.io/<path>` for Docker Hub (as docker names it there), else the canonical name."""
    if repository.is_docker_hub:
        return f"docker.io/{repository.path}"
    return repository.name


def server_of(repository: Repository, server: str | None) -> str:
    """`server` when given (an https URL), else Docker Hub's notary or the registry's host."""
    if not server:
        return DOCKER_HUB_NOTARY if repository.is_docker_hub else f"https://{repository.registry}"
    return checked_server(server)


def checked_server(server: str) -> str:
    """`server` as an https URL without a trailing slash; anything else is the Go message."""
    try:
        parts = urlsplit(server)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme != "https" or not parts.hostname:
        raise ConfigError(f"valid https URL required for trust server, got {server}")
    return server.rstrip("/")

"""The use cases, wired from the registry client, and later the store and projections.

Front ends call these functions and nothing deeper, so every front end shares one path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from regwatch.errors import NotFound
from regwatch.net import Transport
from regwatch.refs import parse_reference, parse_repository
from regwatch.registry.auth import Credentials
from regwatch.registry.client import RegistryClient


@dataclass(frozen=True)
class Access:
    """How to reach a registry: who we are and which roots we trust."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_certs: Sequence[str] = ()
    insecure: bool = False

    @property
    def credentials(self) -> Credentials | None:
        """Basic credentials only when both halves are given, as the Go resource does."""
        if self.username and self.password:
            return Credentials(self.username, self.password)
        return None


def connect(registry: str, access: Access, transport: Transport | None = None) -> RegistryClient:
    return RegistryClient(
        registry,
        transport or Transport(ca_certs=access.ca_certs),
        access.credentials,
        insecure=access.insecure,
    )


def list_tags(repository: str, access: Access) -> list[str]:
    repo = parse_repository(repository)
    return connect(repo.registry, access).list_tags(repo)


def resolve_digest(reference: str, access: Access) -> str:
    """The digest a tag (or digest) reference names right now, HEAD first."""
    ref = parse_reference(reference)
    descriptor = connect(ref.repository.registry, access).resolve(ref)
    if descriptor is None:
        raise NotFound(f"resolve {ref}: manifest unknown", 404)
    return descriptor.digest

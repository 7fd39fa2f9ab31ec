"""Reaching a registry: who we are, which roots we trust, and the client built from them.

Apart from `wiring` so that `tags` and `digest`, which need nothing else, import no models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from regwatch.net import Transport
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

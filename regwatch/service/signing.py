"""Content trust for `out`: sign the pushed manifest under each tag (spec §6.7, quirk Q14).

The key is loaded before anything is pushed, so a wrong passphrase costs no upload. Unlike
the Go resource, a signing failure fails the put, and an index is signed as the index (its own
digest and size) under each tag, not as each of its children in turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from regwatch.errors import TrustError
from regwatch.net import ClientCertificate
from regwatch.refs import Repository
from regwatch.registry.credentials import CredentialSource, StaticCredentials
from regwatch.specs import Access, Signing
from regwatch.trust.client import NotaryClient
from regwatch.trust.keys import SigningKey, load_repository_key
from regwatch.trust.names import gun_of, server_of
from regwatch.trust.signer import sign

if TYPE_CHECKING:
    from regwatch.service.app import Service


class Signer:
    """What one put signs with: the repository key, and a client for the collection."""

    def __init__(
        self, service: Service, repository: Repository, access: Access, signing: Signing
    ) -> None:
        self._service = service
        self.key = signing_key(signing)
        server = server_of(repository, signing.server)
        certificate = None
        if signing.tls_cert or signing.tls_key:
            if not (signing.tls_cert and signing.tls_key):
                raise TrustError("content_trust: tls_cert and tls_key go together")
            certificate = ClientCertificate(signing.tls_cert, signing.tls_key)
        transport = service.clients.transport(access, certificate)
        credentials: CredentialSource
        if signing.username or signing.password:
            credentials = StaticCredentials(signing.username or "", signing.password or "")
        else:
            credentials = service.clients.credentials(repository.registry, access)
        self.client = NotaryClient(
            transport, server, gun_of(repository), credentials, signing.actions
        )

    def sign(self, tags: Sequence[str], digest: str, size: int) -> None:
        sign(self.client, self.key, list(dict.fromkeys(tags)), digest, size, self._service.now())


def signing_key(signing: Signing) -> SigningKey:
    """The repository key; a `key_id` given must be its ID (notary names key files by it)."""
    key = load_repository_key(signing.key, signing.passphrase)
    if signing.key_id and signing.key_id != key.key_id:
        raise TrustError(
            f"content_trust: repository_key_id {signing.key_id} is not the ID of repository_key "
            f"({key.key_id})"
        )
    return key

"""The notary server's HTTP API for one collection (GUN): metadata and keys, and publishing.

Authentication is the registry's: the server's 401 names the token service and we answer it
with `registry.auth.Authenticator` for the scope `repository:<GUN>:<scopes>`, with the same
realm policy as for a registry.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Final
from urllib.parse import quote, urlsplit

from regwatch.errors import AuthFailed, TrustError
from regwatch.net import Answer, Transport
from regwatch.registry.auth import Authenticator, preferred_challenge
from regwatch.registry.client import registry_errors
from regwatch.registry.credentials import CredentialSource

log = logging.getLogger(__name__)

METADATA_LIMIT: Final = 16 << 20
"""Bytes of one metadata document: a targets role with thousands of tags fits many times."""


SNAPSHOT_HINT: Final = (
    "regwatch signs no snapshot: the server must hold the collection's snapshot key "
    "(`notary key rotate {gun} snapshot -r`), as `docker trust` sets it up"
)
"""Said when the server refuses a publish: the usual cause is a snapshot key a client holds."""


class NotaryClient:
    """Talks to `server` (an `https://host[:port]` URL, as `names.server_of` gives it) about
    the collection `gun`."""

    def __init__(
        self,
        transport: Transport,
        server: str,
        gun: str,
        credentials: CredentialSource | None,
        actions: str,
    ) -> None:
        self._transport = transport
        self._server = server
        self._host = urlsplit(server).netloc
        self._base = f"{server}/v2/{quote(gun, safe='/:')}/_trust/tuf/"
        self.gun = gun
        self._credentials = credentials
        self._scopes = (f"repository:{gun}:{actions}",)
        self._auth: Authenticator | None = None

    def get(self, name: str) -> bytes | None:
        """`<name>` of the collection (`root.json`, `targets/releases.json`, `snapshot.key`);
        None when the server has none."""
        what = f"get {name} of {self.gun} from notary server {self._host}"
        answer = self._send("GET", self._base + name, what)
        if answer.status == 404:
            return None
        if answer.status != 200:
            raise self._refused(answer, what)
        return answer.body

    def publish(self, documents: Mapping[str, bytes]) -> None:
        """Send the signed role documents in one multipart POST, as notary's client does."""
        what = f"publish {', '.join(documents)} of {self.gun} to notary server {self._host}"
        boundary = secrets.token_hex(16)
        parts = []
        for role, body in documents.items():
            parts.append(
                f"--{boundary}\r\n"
                f'Content-Disposition: form-data; name="files"; filename="{role}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n".encode()
                + body
                + b"\r\n"
            )
        payload = b"".join(parts) + f"--{boundary}--\r\n".encode()
        content_type = f"multipart/form-data; boundary={boundary}"
        answer = self._send("POST", self._base, what, payload, content_type)
        if answer.status == 400:
            refused = self._refused(answer, what)
            raise TrustError(f"{refused}; {SNAPSHOT_HINT.format(gun=self.gun)}")
        if answer.status != 200:
            raise self._refused(answer, what)

    def _send(
        self, method: str, url: str, what: str, body: bytes | None = None, content_type: str = ""
    ) -> Answer:
        """The answer, after answering one auth challenge when the server asks for it."""
        for _ in range(2):
            headers = {"Content-Type": content_type} if content_type else {}
            sent = self._auth.authorization(self._scopes) if self._auth else None
            if sent:
                headers["Authorization"] = sent
            answer = self._transport.fetch(
                method, url, what=what, limit=METADATA_LIMIT, headers=headers, data=body
            )
            if answer.status != 401:
                return answer
            header = answer.headers.get("WWW-Authenticate")
            if self._auth is None:
                challenge = preferred_challenge(header or "")
                if challenge is None:
                    break
                self._auth = Authenticator(
                    self._transport, self._server, self._credentials, challenge
                )
            elif not self._auth.unauthorized(self._scopes, header, sent):
                break
        raise AuthFailed(
            f"{what}: 401 unauthorized; check content_trust username/password "
            "(or the source's credentials) and scopes",
            401,
        )

    def _refused(self, answer: Answer, what: str) -> TrustError:
        reason = registry_errors(answer.body).lower() or answer.reason
        return TrustError(f"{what}: {answer.status} {reason}")

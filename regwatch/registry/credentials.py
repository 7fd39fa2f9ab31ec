"""Who we are to a registry, behind one small protocol: what to send now, and renewal on a 401.

A static pair is all the Concourse steps need; a Docker config file, ECR (tokens that expire
after 12 h) and ACR (refresh tokens) are further sources of the same shape. The secrets never
appear in a repr, a log line or an error message.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Credentials:
    """A username and password, and perhaps an identity (OAuth2 refresh) token.

    With an identity token, tokens are fetched with the OAuth2 refresh-token grant; the pair,
    when both halves are given, is sent as Basic (the Go resource's rule). A registry token (a
    Docker config's `registrytoken`) is a bearer token sent to the registry as is.
    """

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str | None = field(default=None, repr=False)
    registry_token: str | None = field(default=None, repr=False)

    def basic(self) -> str | None:
        """The `Authorization` value for Basic, or None unless both halves are given."""
        if not (self.username and self.password):
            return None
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


class CredentialSource(Protocol):
    """Where the credentials for one registry come from; may be called from several threads."""

    def current(self) -> Credentials | None:
        """The credentials to send now; None means anonymous."""
        ...

    def refresh(self) -> bool:
        """The current credentials were refused (a 401): renew them if this source can.

        Returns whether `current()` now gives something worth one more try.
        """
        ...


@dataclass(frozen=True)
class StaticCredentials:
    """A fixed pair (and perhaps identity token), as a Concourse `source` gives them."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str | None = field(default=None, repr=False)

    def current(self) -> Credentials | None:
        if not (self.username and self.password) and not self.identity_token:
            return None
        return Credentials(self.username, self.password, self.identity_token)

    def refresh(self) -> bool:
        """A fixed pair that was refused stays refused."""
        return False

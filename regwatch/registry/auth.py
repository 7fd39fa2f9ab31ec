"""How we prove who we are: answering a registry's Basic or Bearer challenge for a scope.

Tokens are cached per (realm, service, scope) until shortly before they expire, so concurrent
checks of one repository share one token. Credentials go only to the registry itself or to the
token realm it names, and a realm is refused when following it would leak them.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from regwatch.errors import AuthFailed, RegistryError
from regwatch.net import Transport
from regwatch.refs import host_without_port, is_loopback, is_loopback_or_private

_TOKEN_MARGIN = 30.0
"""Seconds before expiry at which a cached token is treated as gone."""

_DEFAULT_TOKEN_LIFETIME = 60.0
"""The distribution spec's default when a token response omits `expires_in`."""

_CHALLENGE_RE = re.compile(r"(?:^|,)\s*([A-Za-z][A-Za-z0-9_-]*)\s+")
_PARAM_RE = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def basic(self) -> str:
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


@dataclass(frozen=True)
class Challenge:
    """One `WWW-Authenticate` challenge: a scheme (lower-case) and its parameters."""

    scheme: str
    params: dict[str, str]

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.params.get("scope", "").split())


def parse_challenges(header: str) -> list[Challenge]:
    """Parse `WWW-Authenticate`, which may hold several challenges separated by commas."""
    starts = [m for m in _CHALLENGE_RE.finditer(header) if "=" not in m.group(1)]
    challenges = []
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(header)
        body = header[match.end() : end]
        params = {
            m.group(1).lower(): _unquote(m.group(2)) if m.group(2) is not None else m.group(3)
            for m in _PARAM_RE.finditer(body)
        }
        challenges.append(Challenge(match.group(1).lower(), params))
    return challenges


def _unquote(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def preferred_challenge(header: str) -> Challenge | None:
    """The bearer challenge if there is one, else basic; others we cannot answer."""
    by_scheme = {c.scheme: c for c in parse_challenges(header)}
    return by_scheme.get("bearer") or by_scheme.get("basic")


@dataclass
class _Token:
    value: str
    expires_at: float


class Authenticator:
    """Produces the `Authorization` value for a registry request in a given scope.

    `base_url` is how the registry was reached (scheme and host), fixed by the ping.
    """

    def __init__(
        self,
        transport: Transport,
        base_url: str,
        credentials: Credentials | None,
        challenge: Challenge | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._base = urlsplit(base_url)
        self._credentials = credentials
        self._challenge = challenge
        self._clock = clock
        self._tokens: dict[tuple[str, str, tuple[str, ...]], _Token] = {}
        self._lock = threading.Lock()
        if challenge and challenge.scheme == "bearer":
            self._check_realm(challenge)

    @property
    def registry(self) -> str:
        return self._base.netloc

    def authorization(self, scopes: tuple[str, ...]) -> str | None:
        """The header value to send, fetching a token when the registry wants one."""
        if self._challenge is None or self._challenge.scheme == "basic":
            return self._credentials.basic() if self._credentials else None
        key = self._key(self._challenge, scopes)
        with self._lock:
            token = self._tokens.get(key)
            if token is None or token.expires_at <= self._clock():
                token = self._fetch_token(self._challenge, scopes)
                self._tokens[key] = token
            return f"Bearer {token.value}"

    def refresh(self, scopes: tuple[str, ...], header: str | None) -> bool:
        """React to a 401: forget the cached token and adopt the new challenge.

        Returns whether a retry could succeed; a Basic challenge with the credentials we
        already sent cannot.
        """
        challenge = preferred_challenge(header or "")
        if challenge is None or challenge.scheme != "bearer":
            return False
        self._check_realm(challenge)
        with self._lock:
            if self._challenge is not None:
                self._tokens.pop(self._key(self._challenge, scopes), None)
            self._challenge = challenge
        return True

    def scopes_with(self, scopes: tuple[str, ...], header: str | None) -> tuple[str, ...]:
        """Our scopes plus any new one an `insufficient_scope` challenge asks for."""
        challenge = preferred_challenge(header or "")
        extra = challenge.scopes if challenge else ()
        return scopes + tuple(s for s in extra if s not in scopes)

    def _key(
        self, challenge: Challenge, scopes: tuple[str, ...]
    ) -> tuple[str, str, tuple[str, ...]]:
        return (challenge.params.get("realm", ""), challenge.params.get("service", ""), scopes)

    def _check_realm(self, challenge: Challenge) -> None:
        realm = challenge.params.get("realm")
        if not realm:
            raise AuthFailed(f"registry {self.registry}: bearer challenge without a realm")
        parts = urlsplit(realm)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise AuthFailed(
                f"registry {self.registry}: token realm {realm!r} is not an http(s) URL"
            )
        if parts.scheme == "http" and self._base.scheme != "http":
            raise AuthFailed(
                f"registry {self.registry}: refusing plain-http token realm {parts.netloc} "
                "for a registry reached over https"
            )
        if is_loopback_or_private(parts.netloc) and not self._realm_host_allowed(parts.netloc):
            raise AuthFailed(
                f"registry {self.registry}: refusing token realm on private address {parts.netloc}"
            )

    def _realm_host_allowed(self, realm_netloc: str) -> bool:
        """A private realm is fine on the registry's own host, or on loopback for a local registry.

        The second half is our answer to the Go original's refusal of a token service on another
        loopback port (quirk Q20): both ends are this machine, so nothing leaves it.
        """
        registry_host = host_without_port(self.registry)
        realm_host = host_without_port(realm_netloc)
        return realm_host == registry_host or (
            is_loopback(registry_host) and is_loopback(realm_host)
        )

    def _fetch_token(self, challenge: Challenge, scopes: tuple[str, ...]) -> _Token:
        realm = challenge.params["realm"]
        realm_host = urlsplit(realm).netloc
        what = f"get token for {' '.join(scopes) or 'registry'} from {realm_host}"
        params: dict[str, str | list[str]] = {"scope": list(scopes)}
        if "service" in challenge.params:
            params["service"] = challenge.params["service"]
        headers = {"Accept": "application/json"}
        if self._credentials:
            headers["Authorization"] = self._credentials.basic()
        response = self._transport.request("GET", realm, what=what, headers=headers, params=params)
        with response:
            if response.status_code in (401, 403):
                hint = (
                    "check username and password"
                    if self._credentials
                    else "the registry needs a username and password"
                )
                raise AuthFailed(
                    f"{what}: {response.status_code} {_reason(response.status_code)}; {hint}",
                    response.status_code,
                )
            if response.status_code != 200:
                raise RegistryError(
                    f"{what}: token service answered {response.status_code}", response.status_code
                )
            try:
                body = json.loads(response.content)
            except (ValueError, RecursionError):
                raise RegistryError(f"{what}: token service answered with invalid JSON") from None
        value = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise RegistryError(f"{what}: no token in the token service's answer")
        lifetime = body.get("expires_in")
        if not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = _DEFAULT_TOKEN_LIFETIME
        return _Token(value, self._clock() + max(float(lifetime) - _TOKEN_MARGIN, 1.0))


def _reason(status: int) -> str:
    return {401: "unauthorized", 403: "forbidden"}.get(status, "error")

"""How we prove who we are: answering a registry's Basic or Bearer challenge for a scope.

Tokens are cached per (realm, service, scope) until shortly before they expire, so concurrent
checks of one repository share one token. Credentials go only to the registry itself or to the
token realm it names, and a realm is refused when following it would leak them: an internal
address (judged on what the host resolves to, and again on the address each connection reaches)
is allowed only on the registry's own machine, and the token service's redirects are followed
here, hop by hop, each judged the same way, with credentials only for the realm's own host.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urljoin, urlsplit

from regwatch.errors import AuthFailed, RegistryError
from regwatch.net import Transport, loggable_url
from regwatch.registry.addresses import Address, is_internal, is_local, parse, resolve

log = logging.getLogger(__name__)

_TOKEN_MARGIN = 30.0
"""Seconds before expiry at which a cached token is treated as gone."""

_DEFAULT_TOKEN_LIFETIME = 60.0
"""The distribution spec's default when a token response omits `expires_in`."""

TOKEN_ANSWER_LIMIT = 1024 * 1024
"""Bytes of a token service's answer; a token is a few KiB."""

_MAX_TOKEN_HOPS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

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
        self._registry_addresses: frozenset[Address] | None = None
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
        self._check_url(urlsplit(realm), realm)

    def _check_url(self, parts: SplitResult, url: str) -> None:
        """Refuse a token URL that is not http(s), downgrades to http, or is internal elsewhere."""
        try:
            host = parts.hostname
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            host = None
        if parts.scheme not in ("https", "http") or not host:
            raise AuthFailed(
                f"registry {self.registry}: token realm {loggable_url(url)!r} is not an http(s) URL"
            )
        if parts.scheme == "http" and self._base.scheme != "http":
            raise AuthFailed(
                f"registry {self.registry}: refusing plain-http token realm {parts.netloc} "
                "for a registry reached over https"
            )
        if not self._realm_allowed(resolve(host)):
            raise self._refused(parts.netloc)

    def _refused(self, where: str) -> AuthFailed:
        return AuthFailed(
            f"registry {self.registry}: refusing token realm on private address {where}"
        )

    def _realm_allowed(self, realm: frozenset[Address]) -> bool:
        """A realm on internal addresses is fine on the registry's own machine only.

        That is: every address the realm reaches is one of the registry's, or both are on
        loopback. The second half is our answer to the Go original's refusal of a token service
        on another loopback port (quirk Q20): both ends are this machine, so nothing leaves it.
        """
        if not any(is_internal(address) for address in realm):
            return True
        registry = self._registry_addresses_here()
        return realm <= registry or (
            bool(registry) and all(map(is_local, registry)) and all(map(is_local, realm))
        )

    def _registry_addresses_here(self) -> frozenset[Address]:
        if self._registry_addresses is None:
            self._registry_addresses = resolve(self._base.hostname or "")
        return self._registry_addresses

    def _check_peer(self, where: str) -> Callable[[str], None]:
        """The check of the address a token connection actually reached (no DNS rebinding)."""

        def check(peer: str) -> None:
            address = parse(peer)
            if address is None or not self._realm_allowed(frozenset({address})):
                raise self._refused(where)

        return check

    def _fetch_token(self, challenge: Challenge, scopes: tuple[str, ...]) -> _Token:
        realm = challenge.params["realm"]
        first = urlsplit(realm)
        what = f"get token for {' '.join(scopes) or 'registry'} from {first.netloc}"
        log.debug("fetching a token for %s from %s", " ".join(scopes) or "registry", first.netloc)
        params: dict[str, str | list[str]] | None = {"scope": list(scopes)}
        if "service" in challenge.params and params is not None:
            params["service"] = challenge.params["service"]
        url = realm
        for _ in range(_MAX_TOKEN_HOPS + 1):
            parts = urlsplit(url)
            self._check_url(parts, url)
            headers = {"Accept": "application/json"}
            home = (parts.scheme, parts.netloc.lower()) == (first.scheme, first.netloc.lower())
            if self._credentials and home:
                headers["Authorization"] = self._credentials.basic()
            answer = self._transport.fetch(
                "GET",
                url,
                what=what,
                limit=TOKEN_ANSWER_LIMIT,
                headers=headers,
                params=params,
                follow_redirects=False,
                peer_check=self._check_peer(parts.netloc),
            )
            location = answer.headers.get("Location")
            if answer.status not in _REDIRECTS:
                break
            if not location:
                raise RegistryError(f"{what}: token service redirected without a Location")
            url, params = urljoin(answer.url, location), None
        else:
            raise RegistryError(f"{what}: more than {_MAX_TOKEN_HOPS} redirects")
        if answer.status in (401, 403):
            hint = (
                "check username and password"
                if self._credentials
                else "the registry needs a username and password"
            )
            raise AuthFailed(
                f"{what}: {answer.status} {_reason(answer.status)}; {hint}", answer.status
            )
        if answer.status != 200:
            raise RegistryError(f"{what}: token service answered {answer.status}", answer.status)
        try:
            body = json.loads(answer.body)
        except (ValueError, RecursionError):
            raise RegistryError(f"{what}: token service answered with invalid JSON") from None
        value = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise RegistryError(f"{what}: no token in the token service's answer")
        lifetime = body.get("expires_in")
        if not isinstance(lifetime, int | float) or not 0 < lifetime < 10**9:
            lifetime = _DEFAULT_TOKEN_LIFETIME
        log.debug("got a token for %s", " ".join(scopes) or "registry")
        return _Token(value, self._clock() + max(float(lifetime) - _TOKEN_MARGIN, 1.0))


def _reason(status: int) -> str:
    return {401: "unauthorized", 403: "forbidden"}.get(status, "error")

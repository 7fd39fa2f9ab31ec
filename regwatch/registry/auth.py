"""How we prove who we are: answering a registry's Basic or Bearer challenge for a scope.

Tokens are cached per (realm, service, scope) until shortly before they expire, so concurrent
checks of one repository share one token. With an identity token the token is asked for with
the OAuth2 refresh-token grant (a form POST, as docker does; a realm that answers 404 or 405 is
asked with GET instead), otherwise with GET and Basic. A 401 caused by our credentials (from the
token service, or from a Basic registry) asks the credential source once for new ones.

Credentials go only to the registry itself or to the token realm it names, and a realm is
refused when following it would leak them: an internal address (judged on what the host
resolves to, and again on the address each connection reaches) is allowed only on the
registry's own machine, and the token service's redirects are followed here, hop by hop, each
judged the same way, with credentials (a Basic header or a POST's form) only for the realm's own
host.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlencode, urljoin, urlsplit

from regwatch.errors import AuthFailed, RegistryError
from regwatch.net import Answer, Transport, loggable_url
from regwatch.registry.addresses import Address, is_internal, is_local, parse, resolve
from regwatch.registry.credentials import Credentials, CredentialSource

log = logging.getLogger(__name__)

_TOKEN_MARGIN = 30.0
"""Seconds before expiry at which a cached token is treated as gone."""

_DEFAULT_TOKEN_LIFETIME = 60.0
"""The distribution spec's default when a token response omits `expires_in`."""

TOKEN_ANSWER_LIMIT = 1024 * 1024
"""Bytes of a token service's answer; a token is a few KiB."""

CLIENT_ID = "regwatch"
"""The OAuth2 `client_id` of a token POST (docker sends its own name too)."""

_MAX_TOKEN_HOPS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_FORM = "application/x-www-form-urlencoded"

_CHALLENGE_RE = re.compile(r"(?:^|,)\s*([A-Za-z][A-Za-z0-9_-]*)\s+")
_PARAM_RE = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


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
        credentials: CredentialSource | None,
        challenge: Challenge | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._base = urlsplit(base_url)
        self._source = credentials
        self._challenge = challenge
        self._clock = clock
        self._tokens: dict[tuple[str, str, tuple[str, ...]], _Token] = {}
        self._rotated: dict[tuple[str, str, str], str] = {}
        """The newest refresh token a token service handed back, per (realm, service, the
        identity token it replaced)."""
        self._get_only: set[str] = set()
        """Realms that answered a token POST with 404 or 405."""
        self._lock = threading.Lock()
        self._renew_lock = threading.Lock()
        self._registry_addresses: frozenset[Address] | None = None
        if challenge and challenge.scheme == "bearer":
            self._check_realm(challenge)

    @property
    def registry(self) -> str:
        return self._base.netloc

    def authorization(self, scopes: tuple[str, ...]) -> str | None:
        """The header value to send, fetching a token when the registry wants one."""
        credentials = self._current()
        if credentials is not None and credentials.registry_token:
            return f"Bearer {credentials.registry_token}"
        if self._challenge is None or self._challenge.scheme == "basic":
            return credentials.basic() if credentials else None
        key = self._key(self._challenge, scopes)
        with self._lock:
            token = self._tokens.get(key)
            if token is None or token.expires_at <= self._clock():
                token = self._fetch_token(self._challenge, scopes)
                self._tokens[key] = token
            return f"Bearer {token.value}"

    def unauthorized(self, scopes: tuple[str, ...], header: str | None, sent: str | None) -> bool:
        """React to a 401 answering a request that carried `sent`; whether one retry could work.

        A Bearer challenge: forget the cached token and adopt the new challenge. A Basic one
        refused the credentials we sent, as a refused registry token does: ask the source for
        new ones (once per refusal).
        """
        used = self._current()
        if used is not None and used.registry_token and sent == f"Bearer {used.registry_token}":
            return self._renewed(used)
        challenge = preferred_challenge(header or "")
        if challenge is not None and challenge.scheme == "bearer":
            self._check_realm(challenge)
            with self._lock:
                if self._challenge is not None:
                    self._tokens.pop(self._key(self._challenge, scopes), None)
                self._challenge = challenge
            return True
        if sent is None or not sent.startswith("Basic "):
            return False
        if (used.basic() if used else None) != sent:
            return True  # another request renewed them meanwhile
        return self._renewed(used)

    def scopes_with(self, scopes: tuple[str, ...], header: str | None) -> tuple[str, ...]:
        """Our scopes plus any new one an `insufficient_scope` challenge asks for."""
        challenge = preferred_challenge(header or "")
        extra = challenge.scopes if challenge else ()
        return scopes + tuple(s for s in extra if s not in scopes)

    def _current(self) -> Credentials | None:
        return self._source.current() if self._source else None

    def _renewed(self, used: Credentials | None) -> bool:
        """Ask the source for credentials other than `used`, which were refused."""
        if self._source is None:
            return False
        with self._renew_lock:
            if self._source.current() != used:
                return True
            renewed = self._source.refresh()
        log.debug(
            "credentials for %s were refused; %s",
            self.registry,
            "the source renewed them" if renewed else "the source has no others",
        )
        return renewed

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
        """A token for `scopes`; credentials the token service refuses are renewed once."""
        credentials = self._current()
        try:
            return self._request_token(challenge, scopes, credentials)
        except AuthFailed as refused:
            if refused.status not in (400, 401) or not self._renewed(credentials):
                raise
        return self._request_token(challenge, scopes, self._current())

    def _request_token(
        self, challenge: Challenge, scopes: tuple[str, ...], credentials: Credentials | None
    ) -> _Token:
        realm = challenge.params["realm"]
        service = challenge.params.get("service")
        what = f"get token for {' '.join(scopes) or 'registry'} from {urlsplit(realm).netloc}"
        identity = credentials.identity_token if credentials else None
        post = bool(identity) and realm not in self._get_only
        log.debug(
            "fetching a token for %s from %s with %s",
            " ".join(scopes) or "registry",
            urlsplit(realm).netloc,
            "POST" if post else "GET",
        )
        if identity and post:
            rotation = (realm, service or "", identity)
            form = {
                "grant_type": "refresh_token",
                "refresh_token": self._rotated.get(rotation, identity),
                "client_id": CLIENT_ID,
                "scope": " ".join(scopes),
                **({"service": service} if service is not None else {}),
            }
            body = urlencode(form).encode("ascii")
            answer = self._ask("POST", realm, what, body=body)
            if answer.status not in (404, 405):
                return self._token_from(answer, what, credentials, rotation)
            log.debug("token realm %s does not take POST; asking with GET", loggable_url(realm))
            self._get_only.add(realm)
        params: dict[str, str | list[str]] = {"scope": list(scopes)}
        if service is not None:
            params["service"] = service
        basic = credentials.basic() if credentials else None
        answer = self._ask("GET", realm, what, params=params, authorization=basic)
        return self._token_from(answer, what, credentials, None)

    def _ask(
        self,
        method: str,
        realm: str,
        what: str,
        *,
        params: dict[str, str | list[str]] | None = None,
        body: bytes | None = None,
        authorization: str | None = None,
    ) -> Answer:
        """The token service's answer, following its redirects here, hop by hop.

        Every hop is judged like the realm. The `Authorization` header and a POST's form, which
        carries a refresh token, go to the realm's own host only: a redirect elsewhere drops the
        header, and is refused when the form would have to follow.
        """
        first = urlsplit(realm)
        url = realm
        for _ in range(_MAX_TOKEN_HOPS + 1):
            parts = urlsplit(url)
            self._check_url(parts, url)
            home = (parts.scheme, parts.netloc.lower()) == (first.scheme, first.netloc.lower())
            headers = {"Accept": "application/json"}
            if body is not None:
                if not home:
                    raise AuthFailed(
                        f"{what}: refusing to send the token request to another host "
                        f"({parts.netloc})"
                    )
                headers["Content-Type"] = _FORM
            if authorization and home:
                headers["Authorization"] = authorization
            answer = self._transport.fetch(
                method,
                url,
                what=what,
                limit=TOKEN_ANSWER_LIMIT,
                headers=headers,
                params=params,
                data=body,
                follow_redirects=False,
                peer_check=self._check_peer(parts.netloc),
            )
            if answer.status not in _REDIRECTS:
                return answer
            location = answer.headers.get("Location")
            if not location:
                raise RegistryError(f"{what}: token service redirected without a Location")
            url, params = urljoin(answer.url, location), None
            if answer.status in (301, 302, 303):
                method, body = "GET", None
        raise RegistryError(f"{what}: more than {_MAX_TOKEN_HOPS} redirects")

    def _token_from(
        self,
        answer: Answer,
        what: str,
        credentials: Credentials | None,
        rotation: tuple[str, str, str] | None,
    ) -> _Token:
        """The token of a 200 answer; a refusal of our credentials is an `AuthFailed` whose
        status is 401 (or 400 for an OAuth2 `invalid_grant`)."""
        body = _json(answer.body)
        if rotation and answer.status in (400, 401, 403):
            self._rotated.pop(rotation, None)  # the next try starts from the source's token
        if answer.status == 400 and rotation and body and body.get("error") == "invalid_grant":
            raise AuthFailed(f"{what}: 400 invalid_grant; the identity token was refused", 400)
        if answer.status in (401, 403):
            if credentials is None:
                hint = "the registry needs a username and password"
            elif rotation:
                hint = "check the identity token"
            else:
                hint = "check username and password"
            raise AuthFailed(
                f"{what}: {answer.status} {_reason(answer.status)}; {hint}", answer.status
            )
        if answer.status != 200:
            raise RegistryError(f"{what}: token service answered {answer.status}", answer.status)
        if body is None:
            raise RegistryError(f"{what}: token service answered with invalid JSON")
        value = body.get("access_token") or body.get("token")
        if not isinstance(value, str) or not value:
            raise RegistryError(f"{what}: no token in the token service's answer")
        lifetime = body.get("expires_in")
        if not isinstance(lifetime, int | float) or not 0 < lifetime < 10**9:
            lifetime = _DEFAULT_TOKEN_LIFETIME
        renewed = body.get("refresh_token")
        if rotation and isinstance(renewed, str) and renewed:
            self._rotated[rotation] = renewed
        log.debug("got a token for %s", what.removeprefix("get token for ").rpartition(" from ")[0])
        return _Token(value, self._clock() + max(float(lifetime) - _TOKEN_MARGIN, 1.0))


def _json(body: bytes) -> dict[str, Any] | None:
    """The body's JSON object (empty when it holds another value); None when it is not JSON."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else {}


def _reason(status: int) -> str:
    return {401: "unauthorized", 403: "forbidden"}.get(status, "error")

"""The process's registry clients: one per registry and credentials, kept across polls.

A client pings once and caches its tokens, and its transport keeps connections open, so a
daemon's thousandth poll of a registry costs the requests of the poll alone. Transports are
shared by every client with the same trust roots.

A registry that answered 429 is paused for as long as it asked (`Retry-After`): until then a
poll of it fails at once, without a request, and polls of other registries go on as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from regwatch.errors import RateLimited
from regwatch.net import ClientCertificate, Transport
from regwatch.registry.client import RegistryClient
from regwatch.registry.credentials import CredentialSource, StaticCredentials
from regwatch.retrying import RetryPolicy
from regwatch.specs import Access

POOL_SIZE = 64
"""Connections kept per host: the highest `concurrency` a watch may ask for."""

DEFAULT_PAUSE: Final = timedelta(seconds=60)
"""How long a registry that answered 429 without a `Retry-After` is left alone."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


CredentialLookup = Callable[[str], CredentialSource | None]
"""Where a registry's credentials come from when a watch names none (the Docker config)."""


def credentials_of(access: Access) -> StaticCredentials:
    """The access's pair; used only when both halves are given, as the Go resource does."""
    return StaticCredentials(access.username or "", access.password or "")


class ClientPool:
    """Registry clients keyed by (registry, access); thread-safe."""

    def __init__(
        self,
        retry: RetryPolicy,
        request_timeout: float,
        sleep: Callable[[float], None],
        on_answer: Callable[[str, int], None] | None = None,
        credentials: CredentialLookup | None = None,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._retry = retry
        self._on_answer = on_answer
        self._lookup = credentials
        self._request_timeout = request_timeout
        self._sleep = sleep
        self._now = now
        self._transports: dict[tuple[tuple[str, ...], ClientCertificate | None], Transport] = {}
        self._clients: dict[tuple[str, Access], RegistryClient] = {}
        self._paused: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def pause(self, registry: str, error: RateLimited) -> datetime:
        """Leave `registry` alone for the seconds its 429 asked for; when the pause ends."""
        wait = DEFAULT_PAUSE if error.retry_after is None else timedelta(seconds=error.retry_after)
        until = self._now() + wait
        with self._lock:
            self._paused[registry] = max(until, self._paused.get(registry, until))
            return self._paused[registry]

    def paused_until(self, registry: str) -> datetime | None:
        """When the pause of `registry` ends; None when it is not paused (any more)."""
        with self._lock:
            until = self._paused.get(registry)
            if until is not None and until <= self._now():
                del self._paused[registry]
                until = None
            return until

    def admit(self, registry: str) -> None:
        """Raise `RateLimited`, sending nothing, while `registry` is paused."""
        until = self.paused_until(registry)
        if until is not None:
            left = (until - self._now()).total_seconds()
            raise RateLimited(
                f"{registry} is rate-limited: paused until {until:%Y-%m-%dT%H:%M:%SZ} as it asked",
                429,
                retry_after=max(0.0, left),
            )

    def client(self, registry: str, access: Access) -> RegistryClient:
        with self._lock:
            client = self._clients.get((registry, access))
            if client is None:
                client = RegistryClient(
                    registry,
                    self._transport(access.ca_certs),
                    self.credentials(registry, access),
                    insecure=access.insecure,
                )
                self._clients[(registry, access)] = client
            return client

    def transport(self, access: Access, client_cert: ClientCertificate | None = None) -> Transport:
        """The transport for `access`'s trust roots, presenting `client_cert` when given."""
        with self._lock:
            return self._transport(access.ca_certs, client_cert)

    def forget(self, registry: str, access: Access) -> None:
        """Drop the client, so the next one pings and authenticates afresh (after a failure
        that may have been the connection's or the token's)."""
        with self._lock:
            self._clients.pop((registry, access), None)

    def close(self) -> None:
        with self._lock:
            for transport in self._transports.values():
                transport.close()
            self._transports.clear()
            self._clients.clear()

    def credentials(self, registry: str, access: Access) -> CredentialSource:
        """The access's own pair when it names either half, else the lookup's source."""
        if access.username or access.password or self._lookup is None:
            return credentials_of(access)
        return self._lookup(registry) or credentials_of(access)

    def _transport(
        self, ca_certs: tuple[str, ...], client_cert: ClientCertificate | None = None
    ) -> Transport:
        transport = self._transports.get((ca_certs, client_cert))
        if transport is None:
            transport = Transport(
                ca_certs=ca_certs,
                retry=self._retry,
                request_timeout=self._request_timeout,
                pool_size=POOL_SIZE,
                sleep=self._sleep,
                on_answer=self._on_answer,
                client_cert=client_cert,
            )
            self._transports[(ca_certs, client_cert)] = transport
        return transport

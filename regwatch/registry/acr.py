"""Azure ACR: a managed identity's Azure AD token, exchanged for an ACR refresh token (spec §5.4).

azure-identity talks to the identity endpoint (IMDS or App Service's `IDENTITY_ENDPOINT`) over
its own HTTP stack, and is imported only when an ACR source logs in. The two calls to the
registry itself (the tenant challenge and `/oauth2/exchange`) go through `regwatch.net`, with
the source's `ca_certs` unless `insecure`, which also switches them to plain HTTP.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final
from urllib.parse import urlencode

from regwatch.errors import CloudLoginFailed, ConfigError, NetworkError
from regwatch.net import Transport
from regwatch.refs import parse_repository, wire_host
from regwatch.registry.credentials import Credentials

if TYPE_CHECKING:
    from azure.identity import ManagedIdentityCredential

log = logging.getLogger("regwatch")

USERNAME: Final = "00000000-0000-0000-0000-000000000000"
TIMEOUT: Final = 30.0
"""Seconds each ACR token call may take, as in the Go resource."""
LIFETIME: Final = 3600.0
"""Seconds an ACR refresh token is reused (ACR's last about three hours); a 401 renews sooner."""
ANSWER_LIMIT: Final = 1 << 20
ERROR_BODY: Final = 4096

CLOUDS: Final = {
    "AzurePublic": "https://management.azure.com/.default",
    "AzureGovernment": "https://management.usgovcloudapi.net/.default",
    "AzureChina": "https://management.chinacloudapi.cn/.default",
}
"""Each cloud's token scope for the managed identity."""


@dataclass(frozen=True)
class AcrSettings:
    """The source's `azure_*` fields and the trust settings of its two token calls."""

    repository: str
    client_id: str | None = None
    tenant_id: str | None = None
    environment: str | None = None
    ca_certs: tuple[str, ...] = field(default=(), repr=False)
    insecure: bool = False


def cloud_of(host: str, environment: str | None) -> str:
    """The explicit environment when it is a known one, else detected from the host."""
    if environment in CLOUDS:
        return environment
    if environment:
        log.warning(
            "unknown azure_environment %s, falling back to auto-detection", json.dumps(environment)
        )
    lowered = host.lower().partition(":")[0]
    if lowered.endswith(".azurecr.us"):
        return "AzureGovernment"
    if lowered.endswith(".azurecr.cn"):
        return "AzureChina"
    return "AzurePublic"


def challenge_tenant(header: str) -> str:
    """The `tenant=` of a `Bearer` challenge, up to `"` or `&`; `common` without one."""
    if not header.startswith("Bearer "):
        return "common"
    _, found, rest = header.partition("tenant=")
    if not found:
        return "common"
    tenant = rest.lstrip('"')
    for stop in ('"', "&", ","):
        tenant = tenant.partition(stop)[0]
    return tenant or "common"


class AcrLogin:
    """The ACR credentials of one source: a refresh token, renewed after a 401 or an hour."""

    def __init__(self, settings: AcrSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._password: str | None = None
        self._expires = 0.0
        self._identity: ManagedIdentityCredential | None = None
        try:
            self.registry = parse_repository(settings.repository).registry
        except ConfigError as exc:
            raise _failed(f"failed to parse repository for ACR auth: {exc}") from None
        scheme = "http" if settings.insecure else "https"
        self._base = f"{scheme}://{wire_host(self.registry)}"
        self._scope = CLOUDS[cloud_of(self.registry, settings.environment)]

    def current(self) -> Credentials:
        with self._lock:
            if self._password is None or self._clock() >= self._expires:
                self._renew()
            assert self._password is not None
            return Credentials(USERNAME, self._password)

    def refresh(self) -> bool:
        with self._lock:
            self._renew()
        return True

    def _renew(self) -> None:
        with self._transport() as transport:
            tenant = self._settings.tenant_id or self._tenant(transport)
            aad = self._aad_token()
            self._password = self._exchange(transport, tenant, aad)
        self._expires = self._clock() + LIFETIME

    @contextmanager
    def _transport(self) -> Iterator[Transport]:
        ca_certs = () if self._settings.insecure else self._settings.ca_certs
        try:
            transport = Transport(ca_certs=ca_certs, request_timeout=TIMEOUT, pool_size=1)
        except ConfigError:
            log.warning("failed to append a CA certificate to ACR HTTP client pool")
            transport = Transport(request_timeout=TIMEOUT, pool_size=1)
        try:
            yield transport
        finally:
            transport.close()

    def _tenant(self, transport: Transport) -> str:
        """The registry's tenant from its unauthenticated `/v2/` challenge; `common` if none."""
        try:
            answer = transport.fetch(
                "GET", f"{self._base}/v2/", what="ACR challenge", limit=ANSWER_LIMIT, retry=False
            )
        except NetworkError:
            return "common"
        if answer.status != 401:
            return "common"
        return challenge_tenant(answer.headers.get("Www-Authenticate", ""))

    def _aad_token(self) -> str:
        try:
            from azure.core.exceptions import AzureError  # noqa: PLC0415 - lazily, see module
            from azure.identity import ManagedIdentityCredential  # noqa: PLC0415
        except ImportError:
            raise _failed(
                "azure-identity is not installed: install regwatch with the `azure` extra "
                "for ACR sources"
            ) from None
        if not log.isEnabledFor(logging.DEBUG):
            # azure-identity logs each failed attempt as a warning; ours is the one line.
            logging.getLogger("azure").setLevel(logging.ERROR)
        if self._identity is None:
            try:
                self._identity = ManagedIdentityCredential(client_id=self._settings.client_id)
            except (AzureError, ValueError) as exc:
                raise _failed(
                    f"failed to create Managed Identity credential: {_first_line(exc)}"
                ) from exc
        try:
            token: str = self._identity.get_token(self._scope).token
        except AzureError as exc:
            raise _failed(f"failed to acquire Azure AD token: {_first_line(exc)}") from exc
        return token

    def _exchange(self, transport: Transport, tenant: str, aad_token: str) -> str:
        form = urlencode(
            {
                "grant_type": "access_token",
                "service": self.registry,
                "tenant": tenant,
                "access_token": aad_token,
            }
        ).encode()
        try:
            answer = transport.fetch(
                "POST",
                f"{self._base}/oauth2/exchange",
                what="ACR token exchange",
                limit=ANSWER_LIMIT,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                data=form,
                retry=False,
            )
        except NetworkError as exc:
            raise _failed(f"ACR token exchange: {exc}") from exc
        if answer.status != 200:
            body = answer.body[:ERROR_BODY].decode(errors="replace")
            hint = (
                " (azure_tenant_id must be the tenant of the registry)"
                if self._settings.tenant_id
                else ""
            )
            raise _failed(f"ACR token exchange returned status {answer.status}: {body}{hint}")
        try:
            token = json.loads(answer.body).get("refresh_token", "")
        except (ValueError, AttributeError) as exc:
            raise _failed(f"failed to decode ACR token exchange response: {exc}") from None
        if not isinstance(token, str) or not token:
            raise _failed("received empty ACR refresh token")
        return token


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _failed(reason: str) -> CloudLoginFailed:
    return CloudLoginFailed(f"cannot authenticate with ACR: {reason}")

"""Amazon ECR: AWS credentials (chain, static keys, assumed roles) become a registry password.

boto3 is imported only when an ECR source logs in, so nothing else pays for its start-up. It
follows `AWS_ENDPOINT_URL_ECR` / `AWS_ENDPOINT_URL_STS` and the rest of the AWS environment by
itself; regwatch passes no endpoint of its own. botocore's exceptions become
`CloudLoginFailed` here, worded by the step that failed and never carrying a key or token.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from regwatch.errors import CloudLoginFailed
from regwatch.registry.credentials import Credentials

if TYPE_CHECKING:
    import boto3

log = logging.getLogger("regwatch")

USERNAME: Final = "AWS"
DEFAULT_LIFETIME: Final = 3600.0
"""Seconds a token is trusted when ECR's `expiresAt` is missing or already past (a local
stand-in's); a 401 renews it sooner."""
RENEW_BEFORE: Final = 300.0
"""Seconds before expiry a cached token is replaced, so no request carries a dying one."""
SESSION_NAME: Final = "regwatch"


@dataclass(frozen=True)
class EcrSettings:
    """The source's `aws_*` fields; validated by `check_settings` before use."""

    region: str
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    role_arns: tuple[str, ...] = ()
    account_id: str | None = None


def registry_host(account_id: str, region: str) -> str:
    return f"{account_id}.dkr.ecr.{region}.amazonaws.com"


@dataclass(frozen=True)
class _Token:
    password: str = field(repr=False)
    host: str
    expires: float


class EcrLogin:
    """The ECR credentials of one source: fetched once, kept until shortly before they expire.

    A `CredentialSource`: a 401 (a token that expired mid-poll, or was revoked) fetches a new
    one, and the registry client retries the request once with it.
    """

    def __init__(self, settings: EcrSettings, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._token: _Token | None = None

    def registry(self) -> str:
        """The registry host: the account's when `aws_account_id` is set, else ECR's proxy
        endpoint (which needs the first token)."""
        if self._settings.account_id:
            return registry_host(self._settings.account_id, self._settings.region)
        return self._valid().host

    def current(self) -> Credentials:
        return Credentials(USERNAME, self._valid().password)

    def refresh(self) -> bool:
        with self._lock:
            self._token = self._fetch()
        return True

    def _valid(self) -> _Token:
        with self._lock:
            token = self._token
            if token is None or self._clock() >= token.expires - RENEW_BEFORE:
                token = self._token = self._fetch()
            return token

    def _fetch(self) -> _Token:
        settings = self._settings
        session = _session(settings)
        for arn in settings.role_arns:
            log.debug("assuming role: %s", arn)
            with _step(f"error assuming role '{arn}'"):
                answer = session.client("sts").assume_role(
                    RoleArn=arn, RoleSessionName=SESSION_NAME
                )
            session = _session(settings, answer["Credentials"])
        with _step("failed to authenticate to ECR"):
            data = session.client("ecr").get_authorization_token()["authorizationData"]
        if not data:
            raise _failed("ECR returned no authorization data")
        return _token_of(data, self._clock())


def _token_of(data: list[Any], now: float) -> _Token:
    """The last entry wins, as in the Go resource; its password is the second half of
    `AWS:<password>`."""
    entry = data[-1]
    try:
        decoded = base64.b64decode(entry.get("authorizationToken", ""), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise _failed("failed to decode credential (the token is not base64)") from None
    parts = decoded.split(":")
    if len(parts) != 2 or not parts[1].strip():
        raise _failed("failed to parse password.")
    endpoint = str(entry.get("proxyEndpoint", ""))
    host = endpoint.removeprefix("https://").removeprefix("http://").rstrip("/")
    if not host:
        raise _failed("ECR returned no proxy endpoint; set aws_account_id")
    return _Token(parts[1].strip(), host, token_expiry(entry.get("expiresAt"), now))


def token_expiry(expires_at: object, now: float) -> float:
    """ECR's expiry when it lies ahead; otherwise unknown, and the default lifetime applies."""
    if isinstance(expires_at, datetime):
        seconds = expires_at.timestamp()
        if seconds > now + RENEW_BEFORE:
            return seconds
    return now + DEFAULT_LIFETIME


def _session(settings: EcrSettings, assumed: Mapping[str, Any] | None = None) -> boto3.Session:
    """A session for the region: an assumed role's keys, the static keys, or the default chain."""
    with _step("load AWS configuration"):
        import boto3  # noqa: PLC0415 - lazily: only ECR sources pay for boto3's start-up

        if assumed is not None:
            return boto3.Session(
                region_name=settings.region,
                aws_access_key_id=assumed["AccessKeyId"],
                aws_secret_access_key=assumed["SecretAccessKey"],
                aws_session_token=assumed["SessionToken"],
            )
        if settings.access_key_id and settings.secret_access_key:
            return boto3.Session(
                region_name=settings.region,
                aws_access_key_id=settings.access_key_id,
                aws_secret_access_key=settings.secret_access_key,
                aws_session_token=settings.session_token or None,
            )
        return boto3.Session(region_name=settings.region)


@contextmanager
def _step(step: str) -> Iterator[None]:
    """botocore's exceptions, once, as one line naming the step; the AWS error code and message
    carry no secret, and the exception itself (whose repr may hold request parameters) is
    dropped."""
    try:
        import botocore.exceptions  # noqa: PLC0415 - see `_session`
    except ImportError:
        raise _failed(
            "boto3 is not installed: install regwatch with the `aws` extra for ECR sources"
        ) from None
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "error")
        message = " ".join(str(error.get("Message", "")).split())
        raise _failed(f"{step}: {code}: {message}".rstrip(": ")) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise _failed(f"{step}: {' '.join(str(exc).split())}") from exc


def _failed(reason: str) -> CloudLoginFailed:
    return CloudLoginFailed(f"cannot authenticate with ECR: {reason}")

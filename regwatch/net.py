"""Every outbound HTTP conversation: CA bundle, timeouts, retries, and requests errors as ours.

One `Transport` is shared by every thread that talks to the same set of servers: requests'
connection pool is thread-safe, and nothing here keeps per-request state on the instance.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import random
import re
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http.client import RemoteDisconnected
from http.cookiejar import DefaultCookiePolicy
from typing import Final, Protocol

import requests
import requests.adapters
import requests.auth
import requests.utils

from regwatch import __version__
from regwatch.errors import ConfigError, ConnectionDropped, NetworkError, TLSFailure, Unreachable

log = logging.getLogger(__name__)

USER_AGENT: Final = f"regwatch/{__version__}"
TIMEOUT: Final = (10.0, 60.0)
"""Connect and read timeouts in seconds: a dead registry fails a check in seconds, not minutes."""

RETRY_BASE_ENV: Final = "REGWATCH_RETRY_BASE_SECONDS"
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_PERMANENT_5XX: Final = frozenset({501, 505})
_RESETS: Final = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, RemoteDisconnected)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for transient answers: 429, 408, 5xx and connection resets.

    The defaults are the Go resource's schedule (5 s × 1.5, at most 5 min apart, give up after
    1 h). `from_env` scales the whole schedule with the base so tests can run it in milliseconds.
    """

    base: float = 5.0
    multiplier: float = 1.5
    max_interval: float = 300.0
    budget: float = 3600.0
    jitter: float = 0.5

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> RetryPolicy:
        raw = environ.get(RETRY_BASE_ENV, "").strip()
        if not raw:
            return cls()
        try:
            base = float(raw)
        except ValueError:
            raise ConfigError(f"{RETRY_BASE_ENV}={raw!r} is not a number of seconds") from None
        if base < 0:
            raise ConfigError(f"{RETRY_BASE_ENV}={raw!r} must not be negative")
        return cls(base=base, max_interval=base * 60, budget=base * 720)

    def interval(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The wait before retry number `attempt` (0-based), with ±jitter randomisation."""
        raw = min(self.base * self.multiplier**attempt, self.max_interval)
        return raw * (1 - self.jitter + 2 * self.jitter * rand())


class Readable(Protocol):
    """A request body that is streamed: anything with `read`."""

    def read(self, size: int = -1, /) -> bytes: ...


def retry_after_seconds(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def is_transient_status(status: int) -> bool:
    return status in (408, 429) or (500 <= status < 600 and status not in _PERMANENT_5XX)


class _NoAuth(requests.auth.AuthBase):
    """Keeps requests from adding `.netrc` credentials: we decide what each request carries."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


_NO_AUTH: Final = _NoAuth()


@dataclass
class Transport:
    """A pooled HTTP session with our CA handling, retries and error translation.

    `verify` is passed on every request because requests lets `REQUESTS_CA_BUNDLE` override a
    session's own `verify`, which would silently drop a user's `ca_certs`.
    """

    ca_certs: Sequence[str] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy.from_env)
    timeout: tuple[float, float] = TIMEOUT
    pool_size: int = 16
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.verify: str | bool = ca_bundle(self.ca_certs) if self.ca_certs else True
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        self._session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=self.pool_size, pool_maxsize=self.pool_size, max_retries=0
        )
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._lock = threading.Lock()
        self._sent = 0

    @property
    def requests_sent(self) -> int:
        """Every HTTP request that went out, retries included: what a poll costs a registry."""
        return self._sent

    def close(self) -> None:
        self._session.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str | Sequence[str]] | None = None,
        data: bytes | Readable | None = None,
        stream: bool = False,
        retry: bool | None = None,
    ) -> requests.Response:
        """Send one request, retrying transient failures when that is safe.

        Returns every HTTP answer, errors included, for the caller to judge; raises
        `NetworkError` when no answer came. `what` names the operation in error messages.
        """
        if retry is None:
            retry = method in _IDEMPOTENT and (data is None or isinstance(data, bytes))
        started = self.clock()
        attempt = 0
        while True:
            try:
                response = self._send(method, url, what, headers, params, data, stream)
            except ConnectionDropped as exc:
                if not retry:
                    raise
                delay = self.retry.interval(attempt)
                if self.clock() - started + delay > self.retry.budget:
                    raise
                log.warning("transient error: %s; retrying in %.1fs", exc, delay)
            else:
                if not (retry and is_transient_status(response.status_code)):
                    return response
                delay = max(
                    self.retry.interval(attempt),
                    retry_after_seconds(response.headers.get("Retry-After")) or 0.0,
                )
                if self.clock() - started + delay > self.retry.budget:
                    return response
                response.close()
                log.warning(
                    "transient error: %s answered %d; retrying in %.1fs",
                    what,
                    response.status_code,
                    delay,
                )
            self.sleep(delay)
            attempt += 1

    def _send(
        self,
        method: str,
        url: str,
        what: str,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str | Sequence[str]] | None,
        data: bytes | Readable | None,
        stream: bool,
    ) -> requests.Response:
        with self._lock:
            self._sent += 1
        with translate_errors(what):
            return self._session.request(
                method,
                url,
                headers=dict(headers or {}),
                params=params,
                data=data,
                auth=_NO_AUTH,
                stream=stream,
                timeout=self.timeout,
                verify=self.verify,
            )


@contextlib.contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Turn requests' exceptions into ours, once, here: also around streamed body reads."""
    try:
        yield
    except requests.exceptions.SSLError as exc:
        raise TLSFailure(f"{what}: TLS failed: {_tls_reason(exc)}") from exc
    except requests.exceptions.Timeout as exc:
        raise Unreachable(f"{what}: timed out") from exc
    except requests.exceptions.ConnectionError as exc:
        error = ConnectionDropped if _is_reset(exc) else Unreachable
        raise error(f"{what}: {_connection_reason(exc)}") from exc
    except (
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
    ) as exc:
        raise ConnectionDropped(f"{what}: connection broke while reading the answer") from exc
    except requests.exceptions.InvalidURL as exc:
        raise NetworkError(f"{what}: invalid URL") from exc
    except requests.exceptions.TooManyRedirects as exc:
        raise NetworkError(f"{what}: too many redirects") from exc


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps, outermost first.

    requests and urllib3 nest their causes in `args` and `reason` as well as `__cause__`.
    """
    queue, seen = [exc], set()
    while queue:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)
        links = [*current.args, reason, current.__cause__, current.__context__]
        queue.extend(link for link in links if isinstance(link, BaseException))


def _is_reset(exc: BaseException) -> bool:
    """A connection dropped mid-conversation: safe to retry an idempotent request."""
    return any(isinstance(cause, _RESETS) for cause in _causes(exc))


def _innermost(exc: BaseException) -> BaseException:
    """The deepest cause of a requests/urllib3 error, which is the part worth showing."""
    *_, last = _causes(exc)
    return last


def _connection_reason(exc: BaseException) -> str:
    inner = _innermost(exc)
    text = str(inner)
    if (
        "NameResolution" in type(inner).__name__
        or "Name or service not known" in text
        or ("resolve" in text.lower())
    ):
        return "cannot resolve the host name"
    match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if match:
        return match.group(1).strip().lower()
    if isinstance(inner, OSError) and inner.strerror:
        return inner.strerror.lower()
    if "Connection aborted" in text or "RemoteDisconnected" in text:
        return "connection closed by the server without an answer"
    return text.split(": ", 1)[-1].lower() or "connection failed"


def _tls_reason(exc: BaseException) -> str:
    text = str(_innermost(exc))
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        detail = re.search(r"certificate verify failed: (.+?)(?: \(_ssl\.c:\d+\))?['\")]*$", text)
        reason = detail.group(1).strip().rstrip(".") if detail else "untrusted certificate"
        return f"certificate verify failed ({reason}); add the registry's CA to ca_certs"
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
        return "the server does not speak TLS on this port"
    match = re.search(r"\] ([^(')]+)", text)
    return match.group(1).strip() if match else "handshake failed"


_bundles: dict[str, str] = {}
_bundles_lock = threading.Lock()


def ca_bundle(ca_certs: Sequence[str]) -> str:
    """A CA file holding the system roots plus `ca_certs`, built once per distinct set.

    Every PEM is checked first, so a bad one fails with its index rather than a TLS error later.
    """
    for index, pem in enumerate(ca_certs):
        _check_pem(index, pem)
    extra = "\n".join(pem.strip() for pem in ca_certs) + "\n"
    key = hashlib.sha256(extra.encode()).hexdigest()
    with _bundles_lock:
        if key in _bundles and os.path.exists(_bundles[key]):
            return _bundles[key]
        with open(_system_bundle(), encoding="utf-8", errors="replace") as system:
            roots = system.read()
        fd, path = tempfile.mkstemp(prefix="regwatch-ca-", suffix=".pem")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(roots.rstrip("\n") + "\n" + extra)
        atexit.register(_remove, path)
        _bundles[key] = path
        return path


def _check_pem(index: int, pem: str) -> None:
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise ConfigError(f"ca_certs[{index}] is not a PEM certificate (no BEGIN CERTIFICATE line)")
    try:
        ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        raise ConfigError(f"ca_certs[{index}] is not a valid PEM certificate: {reason}") from exc


def _system_bundle() -> str:
    """The roots the user's environment already trusts; `ca_certs` add to them."""
    for candidate in (
        os.environ.get("REQUESTS_CA_BUNDLE"),
        os.environ.get("CURL_CA_BUNDLE"),
        ssl.get_default_verify_paths().cafile,
    ):
        if candidate and os.path.isfile(candidate):
            return candidate
    return str(requests.utils.DEFAULT_CA_BUNDLE_PATH)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)

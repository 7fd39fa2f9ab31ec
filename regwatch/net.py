"""Every outbound HTTP conversation: CA bundle, deadlines, retries, and requests errors as ours.

One `Transport` is shared by every thread that talks to the same set of servers: requests'
connection pool is thread-safe, and per-request state lives in context variables and watches.

Every answer but a blob body has a total deadline, and a blob body a minimum rate, enforced by
`regwatch.connections`' watchdog; a request whose deadline passed fails as a dropped connection
and is retried like one.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
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
from typing import Any, Final, Protocol, TypeVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import requests
import requests.adapters
import requests.auth
import requests.utils
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
import urllib3.poolmanager

from regwatch import __version__
from regwatch.connections import CURRENT, WATCHDOG, WATCHED_POOLS, PeerCheck, Watch
from regwatch.errors import (
    ConfigError,
    ConnectionDropped,
    NetworkError,
    RateLimited,
    RegistryError,
    TLSFailure,
    Unreachable,
)
from regwatch.ratelimits import RateLimits
from regwatch.retrying import (
    DEFAULT_REQUEST_TIMEOUT,
    REQUEST_TIMEOUT_ENV,
    Again,
    RetryPolicy,
    retry,
)

log = logging.getLogger(__name__)

USER_AGENT: Final = f"regwatch/{__version__}"
CONNECT_TIMEOUT: Final = 10.0
"""Seconds to connect: a dead registry fails a check in seconds, not minutes."""

BLOB_MIN_PROGRESS: Final = 1024
"""Bytes a blob body must deliver in every request-timeout window."""

CHUNK_SIZE: Final = 1024 * 1024
REDIRECT_BODY_LIMIT: Final = 64 * 1024
_MAX_REDIRECTS: Final = 10
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_PERMANENT_5XX: Final = frozenset({501, 505})
_RESETS: Final = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, RemoteDisconnected)


def header_int(value: str | None) -> int | None:
    """A header that must be a decimal count (`Content-Length`): ASCII digits only, else None.

    `str.isdigit` accepts `²` and other Unicode digits that `int` then refuses.
    """
    text = (value or "").strip()
    if not text or len(text) > 18 or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


class Readable(Protocol):
    """A request body that is streamed: anything with `read`."""

    def read(self, size: int = -1, /) -> bytes: ...


def retry_after_seconds(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when.timestamp() - now())


def is_transient_status(status: int) -> bool:
    return status in (408, 429) or (500 <= status < 600 and status not in _PERMANENT_5XX)


class _NoAuth(requests.auth.AuthBase):
    """Keeps requests from adding `.netrc` credentials: we decide what each request carries."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


_NO_AUTH: Final = _NoAuth()


class Headers(Mapping[str, str]):
    """An answer's headers, read-only and looked up case-insensitively (as HTTP wants)."""

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        self._items = {name.lower(): (name, value) for name, value in (items or {}).items()}

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


@dataclass(frozen=True)
class Answer:
    """A whole answer read within its size limit and deadline; the connection is released."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes
    url: str


class Streamed:
    """An answer whose headers arrived and whose body is still on the wire.

    `chunks()` yields the body, failing when less than 1 KiB arrives in a request-timeout
    window; `close()` (or leaving the `with`) releases the connection.
    """

    def __init__(self, response: requests.Response, watch: Watch, window: float, what: str) -> None:
        self.status: int = response.status_code
        self.reason: str = response.reason or ""
        self.headers: Mapping[str, str] = Headers(response.headers)
        self.url: str = response.url
        self._response = response
        self._watch = watch
        self._window = window
        self._what = what

    def chunks(self) -> Iterator[bytes]:
        what, window = self._what, self._window
        started, progress = time.monotonic(), 0
        while True:
            with (
                _deadline(self._watch, what, window, blob=True),
                WATCHDOG.armed(self._watch, started + window),
                translate_errors(what),
            ):
                chunk = self._response.raw.read1(CHUNK_SIZE, decode_content=True)
            if not chunk:
                return
            progress += len(chunk)
            if progress >= BLOB_MIN_PROGRESS:
                started, progress = time.monotonic(), 0
            yield chunk

    def read(self, limit: int) -> bytes:
        """The rest of the body, refusing to hold more than `limit` bytes."""
        parts: list[bytes] = []
        total = 0
        for chunk in self.chunks():
            total += len(chunk)
            if total > limit:
                raise RegistryError(f"{self._what}: answer larger than {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> Streamed:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Judged(Protocol):
    """What the retry judge reads of an answer."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


_A = TypeVar("_A", bound=_Judged)


@dataclass
class Transport:
    """A pooled HTTP session with our CA handling, deadlines, retries and error translation.

    `verify` is passed on every request because requests lets `REQUESTS_CA_BUNDLE` override a
    session's own `verify`, which would silently drop a user's `ca_certs`.
    """

    ca_certs: Sequence[str] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    pool_size: int = 16
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    on_answer: Callable[[str, int], None] | None = None
    """Told the host and status of every answer (a daemon's request metrics)."""
    secret_urls: bool = False
    """The URLs themselves are secrets (a Slack hook's path): debug lines show the host only."""
    client_cert: ClientCertificate | None = None
    """The TLS client certificate to present (to a notary server)."""

    def __post_init__(self) -> None:
        self.verify: str | bool = ca_bundle(self.ca_certs) if self.ca_certs else system_roots()
        self._cert_files = _CertificateFiles(self.client_cert) if self.client_cert else None
        self._session = _session(self.pool_size)
        self._guarded = _session(1)
        self._lock = threading.Lock()
        self._sent = 0
        self.rate_limits = RateLimits()
        """The latest `ratelimit-*` figures each host sent."""

    @property
    def requests_sent(self) -> int:
        """Every HTTP request that went out, retries included: what a poll costs a registry."""
        return self._sent

    def close(self) -> None:
        self._session.close()
        self._guarded.close()
        if self._cert_files is not None:
            self._cert_files.remove()

    def fetch(
        self,
        method: str,
        url: str,
        *,
        what: str,
        limit: int,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str | Sequence[str]] | None = None,
        data: bytes | Readable | None = None,
        retry: bool | None = None,
        follow_redirects: bool = True,
        peer_check: PeerCheck | None = None,
    ) -> Answer:
        """One request whose whole answer, at most `limit` bytes, arrives within the deadline.

        Transient answers, dropped connections and passed deadlines are retried when safe;
        `peer_check` sends the request on a fresh connection whose address it approves first.
        """

        def once() -> Answer:
            response, watch = self._open(
                method, url, what, headers, params, data, follow_redirects, peer_check
            )
            with (
                response,
                _deadline(watch, what, self.request_timeout),
                WATCHDOG.armed(watch, watch.expiry),
            ):
                body = _read_capped(response, what, limit)
            return Answer(
                response.status_code,
                response.reason or "",
                Headers(response.headers),
                body,
                response.url,
            )

        return self._retrying(method, what, data, retry, once, _no_close)

    def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str | Sequence[str]] | None = None,
        data: bytes | Readable | None = None,
        retry: bool | None = None,
    ) -> Streamed:
        """Send one request and return once its headers arrived; the body streams after.

        Returns every HTTP answer, errors included, for the caller to judge; raises
        `NetworkError` when no answer came. `what` names the operation in error messages.
        """

        def once() -> Streamed:
            response, watch = self._open(method, url, what, headers, params, data, True, None)
            return Streamed(response, watch, self.request_timeout, what)

        return self._retrying(method, what, data, retry, once, Streamed.close)

    def _retrying(
        self,
        method: str,
        what: str,
        data: bytes | Readable | None,
        allowed: bool | None,
        once: Callable[[], _A],
        close: Callable[[_A], None],
    ) -> _A:
        if allowed is None:
            allowed = method in _IDEMPOTENT and (data is None or isinstance(data, bytes))
        if not self.retry.wait_out_rate_limits:
            once = _failing_fast(once, close, what)
        if not allowed:
            return once()

        def again(answer: _A) -> Again | None:
            if not is_transient_status(answer.status):
                return None
            wanted = retry_after_seconds(answer.headers.get("Retry-After")) or 0.0
            return Again(f"{what} answered {answer.status}", wanted)

        return retry(
            once,
            policy=self.retry,
            transient=lambda exc: isinstance(exc, ConnectionDropped),
            again=again,
            discard=close,
            sleep=self.sleep,
            clock=self.clock,
        )

    def _open(
        self,
        method: str,
        url: str,
        what: str,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str | Sequence[str]] | None,
        data: bytes | Readable | None,
        follow_redirects: bool,
        peer_check: PeerCheck | None,
    ) -> tuple[requests.Response, Watch]:
        """Send, and return once the headers arrived within the deadline."""
        with self._lock:
            self._sent += 1
        shown = (urlsplit(url).hostname or "?") if self.secret_urls else loggable_url(url, params)
        log.debug("%s %s", method, shown)
        watch = Watch(self.request_timeout, peer_check)
        session = self._guarded if peer_check else self._session
        sent = dict(headers or {})
        if peer_check:
            sent["Connection"] = "close"
        token = CURRENT.set(watch)
        try:
            # The connection arms the watch once the request is sent: the deadline is for the
            # answer, and an upload's body may take as long as it takes.
            with _deadline(watch, what, self.request_timeout), translate_errors(what):
                response = session.request(
                    method,
                    url,
                    headers=sent,
                    params=params,
                    data=data,
                    auth=_NO_AUTH,
                    stream=True,
                    timeout=(min(CONNECT_TIMEOUT, self.request_timeout), self.request_timeout),
                    verify=self.verify,
                    cert=self._cert_files.paths if self._cert_files else None,
                    allow_redirects=follow_redirects,
                )
        finally:
            WATCHDOG.disarm(watch)
            CURRENT.reset(token)
        log.debug("%s %s: %d", method, shown, response.status_code)
        if self.on_answer is not None:
            self.on_answer(urlsplit(url).netloc, response.status_code)
        self.rate_limits.note(urlsplit(response.url).netloc.rpartition("@")[2], response.headers)
        return response, watch


@dataclass(frozen=True)
class ClientCertificate:
    """A TLS client certificate and its private key, both PEM."""

    certificate: str
    key: str = field(repr=False)


class _CertificateFiles:
    """A client certificate where the TLS library wants it: files, in a directory only we can
    read, the key's mode 0600, removed on `remove()` (and at exit, should that be missed)."""

    def __init__(self, certificate: ClientCertificate) -> None:
        self._directory = tempfile.mkdtemp(prefix="regwatch-client-")
        cert_path = os.path.join(self._directory, "client.cert")
        key_path = os.path.join(self._directory, "client.key")
        for path, text in ((cert_path, certificate.certificate), (key_path, certificate.key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
        self.paths = (cert_path, key_path)
        atexit.register(self.remove)

    def remove(self) -> None:
        for path in self.paths:
            _remove(path)
        with contextlib.suppress(OSError):
            os.rmdir(self._directory)


def _no_close(answer: Answer) -> None:
    """An `Answer` holds no connection."""


def _failing_fast(
    once: Callable[[], _A], close: Callable[[_A], None], what: str
) -> Callable[[], _A]:
    """`once`, raising `RateLimited` at the first 429 instead of waiting it out: a daemon has
    other registries to poll, and pauses this one for as long as its `Retry-After` asks."""

    def judged() -> _A:
        answer = once()
        if answer.status != 429:
            return answer
        close(answer)
        wanted = retry_after_seconds(answer.headers.get("Retry-After"))
        after = f" (retry after {wanted:g}s)" if wanted is not None else ""
        raise RateLimited(f"{what}: 429 too many requests{after}", 429, retry_after=wanted)

    return judged


def _session(pool_size: int) -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    session.max_redirects = _MAX_REDIRECTS
    adapter = _WatchedAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.hooks["response"].append(_cap_redirect_body)
    return session


def _cap_redirect_body(response: requests.Response, **_: Any) -> requests.Response:
    """Read a redirect's body here, capped: requests would read all of it before following."""
    if response.is_redirect:
        body = response.raw.read(REDIRECT_BODY_LIMIT + 1, decode_content=False)
        if len(body) > REDIRECT_BODY_LIMIT:
            response.close()
            raise RegistryError(
                f"{response.request.method} {loggable_url(response.url)}: "
                f"redirect answer larger than {REDIRECT_BODY_LIMIT} bytes"
            )
        response._content = body
        watch = CURRENT.get()
        if watch is not None:
            WATCHDOG.disarm(watch)  # the connection goes back to the pool; the next hop re-arms
    return response


def _read_capped(response: requests.Response, what: str, limit: int) -> bytes:
    """The body, refusing to hold more than `limit` bytes whatever `Content-Length` claims."""
    parts: list[bytes] = []
    total = 0
    with translate_errors(what):
        for chunk in response.iter_content(min(CHUNK_SIZE, limit + 1)):
            total += len(chunk)
            if total > limit:
                raise RegistryError(f"{what}: answer larger than {limit} bytes")
            parts.append(chunk)
    return b"".join(parts)


_SAFE_QUERY_KEYS: Final = frozenset({"n", "last", "scope", "service", "digest", "mount", "from"})


def loggable_url(url: str, params: Mapping[str, str | Sequence[str]] | None = None) -> str:
    """A URL fit for a log line: no user info, and query values shown only when harmless."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    for key, value in (params or {}).items():
        pairs.extend((key, v) for v in ([value] if isinstance(value, str) else value))
    query = "&".join(f"{k}={v if k in _SAFE_QUERY_KEYS else '…'}" for k, v in pairs)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


@contextlib.contextmanager
def _deadline(watch: Watch, what: str, seconds: float, *, blob: bool = False) -> Iterator[None]:
    """Whatever broke or ended early once the watchdog hung up is reported as the deadline.

    So is the socket's own read timeout: it equals the window, so it can fire a moment before
    the watchdog does, and a silent window is the same deadline whichever clock noticed first.
    """
    try:
        yield
    except NetworkError as exc:
        if watch.fired or _read_timed_out(exc):
            raise ConnectionDropped(_deadline_message(what, seconds, blob=blob)) from exc
        raise
    if watch.fired:
        raise ConnectionDropped(_deadline_message(what, seconds, blob=blob))


def _read_timed_out(exc: BaseException) -> bool:
    cause = exc.__cause__
    return isinstance(cause, requests.exceptions.ReadTimeout | urllib3.exceptions.ReadTimeoutError)


def _deadline_message(what: str, seconds: float, *, blob: bool) -> str:
    if blob:
        return f"{what}: less than {BLOB_MIN_PROGRESS} bytes arrived in {seconds:g}s"
    return f"{what}: no complete answer within {seconds:g}s ({REQUEST_TIMEOUT_ENV})"


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter, with connections that report to the request's watch."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> urllib3.poolmanager.PoolManager:
        manager: urllib3.poolmanager.PoolManager = super().proxy_manager_for(proxy, **kwargs)
        if manager.pool_classes_by_scheme is urllib3.poolmanager.pool_classes_by_scheme:
            manager.pool_classes_by_scheme = WATCHED_POOLS  # not SOCKS: it has its own pools
        return manager


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
    except urllib3.exceptions.SSLError as exc:
        raise TLSFailure(f"{what}: TLS failed: {_tls_reason(exc)}") from exc
    except urllib3.exceptions.TimeoutError as exc:
        raise Unreachable(f"{what}: timed out") from exc
    except (urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError) as exc:
        raise ConnectionDropped(f"{what}: connection broke while reading the answer") from exc
    except requests.exceptions.RequestException as exc:
        raise NetworkError(f"{what}: {type(exc).__name__.lower()}") from exc
    except OSError as exc:
        raise ConnectionDropped(f"{what}: {_connection_reason(exc)}") from exc


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


_HASHED_NAME = re.compile(r"[0-9a-f]{8}\.[0-9]+")


def system_roots() -> str | bool:
    """The roots to verify against when the user adds none: the environment's bundle, else the
    system's hashed certificate directory, else requests' own bundle (True).

    A directory is read one certificate at a time as a handshake needs it; loading the whole
    bundle into each TLS context costs ~40 ms, a sixth of a small step's start-up.
    """
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        candidate = os.environ.get(name)
        if candidate and os.path.exists(candidate):
            return candidate
    directory = ssl.get_default_verify_paths().capath
    if directory and os.path.isdir(directory):
        with os.scandir(directory) as entries:
            if any(_HASHED_NAME.fullmatch(entry.name) for entry in entries):
                return directory
    return True


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

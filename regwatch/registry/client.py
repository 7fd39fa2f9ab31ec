"""What we ask a registry: tags, manifests and blobs, answered as plain values.

One `RegistryClient` talks to one registry host. It pings `/v2/` once (choosing https or, where
allowed, plain http), answers auth challenges through an `Authenticator`, and is safe to share
between threads.
"""

from __future__ import annotations

import contextlib
import enum
import json
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

from regwatch.errors import (
    AuthFailed,
    ConfigError,
    DigestMismatch,
    NetworkError,
    NotFound,
    RateLimited,
    RegistryError,
    TLSFailure,
)
from regwatch.image.digests import VerifyingReader, digest_of
from regwatch.image.mediatypes import MANIFEST_MEDIA_TYPES, declared_media_type
from regwatch.image.model import Descriptor
from regwatch.net import Answer, Readable, Streamed, Transport, header_int
from regwatch.refs import Reference, Repository, plain_http_allowed, wire_host
from regwatch.registry.auth import Authenticator, preferred_challenge
from regwatch.registry.credentials import CredentialSource

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
"""The OCI distribution spec's suggested limit; a bigger manifest is an attack, not an image."""

MAX_TAG_PAGES = 1000
"""Pages of one tag listing; a registry that keeps sending `Link` past this is refused."""

MAX_TAGS = 500_000
"""Tags of one listing, over all pages: what bounds a listing's memory."""

TAG_PAGE_LIMIT = 4 * 1024 * 1024
"""Bytes of one tag page (about 100,000 tags)."""

_ACCEPT_MANIFESTS = ", ".join(MANIFEST_MEDIA_TYPES)
_ERROR_LIMIT = 1024 * 1024
_PAGE_SIZE = "1000"
_SEGMENT_RE = re.compile(r"[A-Za-z0-9_.:+=-]{1,256}")
_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")


@dataclass(frozen=True)
class Manifest:
    descriptor: Descriptor
    body: bytes


class _Head(enum.Enum):
    """What a manifest HEAD said when it did not give a usable descriptor."""

    MISSING = "missing"
    INCONCLUSIVE = "inconclusive"


def pull_scope(repository: Repository) -> str:
    return f"repository:{checked_path(repository)}:pull"


def push_scope(repository: Repository) -> str:
    return f"repository:{checked_path(repository)}:push,pull"


def checked_path(repository: Repository) -> str:
    """The repository path, refused unless it is distribution grammar, so that neither a URL
    path nor a token scope can name anything but this repository."""
    components = repository.path.split("/")
    if not all(_COMPONENT_RE.fullmatch(c) for c in components) or len(repository.path) > 255:
        raise ConfigError(f"invalid repository path {repository.path!r}")
    return repository.path


def segment(value: str, what: str) -> str:
    """One URL path segment holding a tag or digest, built so it cannot change the path.

    Only the characters of the distribution grammars pass: a server that decodes `%2F` or
    cleans `..` before routing must not see a path we did not mean.
    """
    if not _SEGMENT_RE.fullmatch(value) or set(value) == {"."}:
        raise ConfigError(f"invalid {what} {value!r}")
    return quote(value, safe=":")


class RegistryClient:
    """The distribution API of one registry host."""

    def __init__(
        self,
        registry: str,
        transport: Transport,
        credentials: CredentialSource | None = None,
        *,
        insecure: bool = False,
    ) -> None:
        self.registry = registry
        self._wire_host = wire_host(registry)
        self._transport = transport
        self._credentials = credentials
        self._plain_http_allowed = insecure or plain_http_allowed(registry)
        self._connection: _Connection | None = None
        self._connect_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return self._connected().registry_url

    # -- reading -------------------------------------------------------------------------------

    def list_tags(self, repository: Repository, *, new_ok: bool = False) -> list[str]:
        """Every tag, following `Link` pagination; a 404 without registry errors means none.

        With `new_ok`, a repository the registry does not know yet (404 whose first error is
        `NAME_UNKNOWN` or `NOT_FOUND`) has no tags either: what a first push needs.
        """
        what = f"list tags of {repository}"
        url: str | None = f"{self._repository_url(repository)}/tags/list?n={_PAGE_SIZE}"
        tags: list[str] = []
        seen: set[str] = set()
        while url is not None:
            if url in seen:
                raise RegistryError(f"{what}: pagination does not end (a page links to itself)")
            if len(seen) >= MAX_TAG_PAGES:
                raise RegistryError(f"{what}: more than {MAX_TAG_PAGES} pages of tags")
            seen.add(url)
            scopes = (pull_scope(repository),)
            answer = self._exchange("GET", url, scopes, what, limit=TAG_PAGE_LIMIT)
            if answer.status == 404 and not registry_errors(answer.body):
                return tags
            if answer.status == 404 and new_ok and _first_code(answer.body) in _UNKNOWN_NAME:
                return tags
            self._expect(answer, what, 200)
            tags.extend(_tags_from(answer, what))
            if len(tags) > MAX_TAGS:
                raise RegistryError(f"{what}: more than {MAX_TAGS} tags")
            link = next_page(answer.headers.get("Link"), answer.url, what)
            url = self._same_registry(link, what) if link else None
        return tags

    def resolve(self, reference: Reference) -> Descriptor | None:
        """The manifest a reference names: HEAD first, GET only when HEAD is not conclusive.

        `None` means the registry says it does not exist (a 404 to HEAD needs no GET). A HEAD
        answer without type, length and digest, with a digest that contradicts the reference,
        with any other status, or lost to the network, falls back to GET (spec §3.5).
        """
        head = self._head_manifest(reference)
        if head is _Head.MISSING:
            return None
        if isinstance(head, Descriptor):
            return head
        manifest = self.find_manifest(reference)
        return manifest.descriptor if manifest else None

    def _head_manifest(self, reference: Reference) -> Descriptor | _Head:
        what = f"resolve {reference}"
        url = self._manifest_url(reference)
        scopes = (pull_scope(reference.repository),)
        try:
            # Not retried: anything but a clean answer falls back to GET, which is.
            answer = self._exchange(
                "HEAD", url, scopes, what, {"Accept": _ACCEPT_MANIFESTS}, retry=False
            )
        except NetworkError:
            return _Head.INCONCLUSIVE
        if answer.status == 404:
            return _Head.MISSING
        media_type = _media_type(answer.headers.get("Content-Type"))
        length = header_int(answer.headers.get("Content-Length"))
        digest = answer.headers.get("Docker-Content-Digest", "")
        conclusive = answer.status == 200 and bool(media_type and length is not None and digest)
        if not conclusive or length is None or (reference.digest and digest != reference.digest):
            return _Head.INCONCLUSIVE
        return Descriptor(media_type, digest, length)

    def get_manifest(self, reference: Reference) -> Manifest:
        """GET a manifest and check it hashes to the digest it was asked for; 404 is NotFound."""
        manifest = self.find_manifest(reference)
        if manifest is None:
            raise NotFound(f"get manifest {reference}: manifest unknown", 404)
        return manifest

    def find_manifest(self, reference: Reference) -> Manifest | None:
        """Like `get_manifest`, but absence is None."""
        what = f"get manifest {reference}"
        url = self._manifest_url(reference)
        scopes = (pull_scope(reference.repository),)
        headers = {"Accept": _ACCEPT_MANIFESTS}
        answer = self._exchange("GET", url, scopes, what, headers, limit=MAX_MANIFEST_BYTES)
        if answer.status == 404:
            return None
        self._expect(answer, what, 200)
        body = answer.body
        media_type = _media_type(answer.headers.get("Content-Type")) or declared_media_type(body)
        algorithm = reference.digest.partition(":")[0] if reference.digest else "sha256"
        digest = digest_of(body, algorithm)
        if reference.digest and digest != reference.digest:
            raise DigestMismatch(
                f"{what}: content has digest {digest}, expected {reference.digest}"
            )
        return Manifest(Descriptor(media_type, digest, len(body)), body)

    @contextlib.contextmanager
    def open_blob(
        self, repository: Repository, digest: str, size: int | None = None
    ) -> Iterator[VerifyingReader]:
        """Stream a blob; reading it to the end verifies its digest (and size, when given)."""
        what = f"download blob {digest} of {repository}"
        url = self._blob_url(repository, digest)
        auth = self._connected().authenticator
        scopes = (pull_scope(repository),)

        def send(value: str | None) -> Streamed:
            headers = {"Authorization": value} if value else {}
            return self._transport.request("GET", url, what=what, headers=headers)

        sent = auth.authorization(scopes)
        answer = send(sent)
        challenge = answer.headers.get("WWW-Authenticate")
        if answer.status == 401 and auth.unauthorized(scopes, challenge, sent):
            answer.close()
            answer = send(auth.authorization(auth.scopes_with(scopes, challenge)))
        with answer:
            if answer.status != 200:
                raise self._error(_error_answer(answer, what), what)
            yield VerifyingReader(answer.chunks(), digest, size, what)

    def blob_size(self, repository: Repository, digest: str) -> int | None:
        """The size of a blob the registry has, or None when it does not have it."""
        what = f"check blob {digest} in {repository}"
        url = self._blob_url(repository, digest)
        answer = self._exchange("HEAD", url, (pull_scope(repository),), what)
        if answer.status == 404:
            return None
        self._expect(answer, what, 200)
        return header_int(answer.headers.get("Content-Length")) or 0

    # -- writing -------------------------------------------------------------------------------

    def upload_blob(
        self,
        repository: Repository,
        content: bytes | Readable,
        digest: str,
        size: int,
        *,
        chunk_size: int | None = None,
        check_exists: bool = True,
    ) -> bool:
        """Upload a blob unless the registry has it; returns whether bytes were sent.

        The conversation every registry speaks (and the Go resource uses): POST for a session,
        the bytes in one PATCH (one per `chunk_size` chunk for large blobs), then PUT with the
        digest. Bytes are verified before they go; a stream is sent as it is read and the
        registry checks its digest.
        """
        what = f"upload blob {digest} to {repository}"
        if isinstance(content, bytes):
            _verify_bytes(content, digest, size, what)
        if check_exists and self.blob_size(repository, digest) is not None:
            return False
        location = self._start_upload(repository, what)
        if location is None:
            return False
        self._finish_upload(repository, location, content, digest, size, chunk_size)
        return True

    def mount_blob(self, repository: Repository, digest: str, source: Repository) -> bool:
        """Ask the registry to link a blob from another repository; False if it would not."""
        what = f"mount blob {digest} from {source} into {repository}"
        url = f"{self._repository_url(repository)}/blobs/uploads/"
        query = {"mount": segment(digest, "digest"), "from": checked_path(source)}
        scopes = (push_scope(repository), pull_scope(source))
        answer = self._exchange("POST", url, scopes, what, params=query)
        if answer.status == 201:
            return True
        self._expect(answer, what, 202)
        self._cancel_upload(repository, self._location(answer, what), what)
        return False

    def put_manifest(self, reference: Reference, body: bytes, media_type: str) -> str:
        """Push a manifest under a tag or digest; returns its digest as the registry agreed."""
        what = f"push manifest {reference}"
        digest = digest_of(body)
        if reference.digest and reference.digest != digest:
            raise DigestMismatch(
                f"{what}: content has digest {digest}, expected {reference.digest}"
            )
        url = self._manifest_url(reference)
        scopes = (push_scope(reference.repository),)
        headers = {"Content-Type": media_type}
        answer = self._exchange("PUT", url, scopes, what, headers, data=body)
        if answer.status not in (200, 201, 202):
            raise self._error(answer, what)
        answered = answer.headers.get("Docker-Content-Digest")
        if answered and answered != digest:
            raise DigestMismatch(f"{what}: registry stored it as {answered}, expected {digest}")
        return digest

    # -- protocol details ----------------------------------------------------------------------

    def _start_upload(self, repository: Repository, what: str) -> str | None:
        """An upload session's URL, or None when the registry says it has the blob (201)."""
        url = f"{self._repository_url(repository)}/blobs/uploads/"
        headers = {"Content-Type": "application/json"}
        answer = self._exchange("POST", url, (push_scope(repository),), what, headers)
        if answer.status == 201:
            return None
        self._expect(answer, what, 202)
        return self._location(answer, what)

    def _finish_upload(
        self,
        repository: Repository,
        location: str,
        content: bytes | Readable,
        digest: str,
        size: int,
        chunk_size: int | None,
    ) -> None:
        what = f"upload blob {digest} to {repository}"
        scopes = (push_scope(repository),)
        step = chunk_size if chunk_size and size > chunk_size else max(size, 1)
        offset = 0
        while offset < size:
            length = min(step, size - offset)
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + length - 1}",
                "Content-Length": str(length),
            }
            body = (
                content[offset : offset + length]
                if isinstance(content, bytes)
                else _Slice(content, length)
            )
            answer = self._exchange("PATCH", location, scopes, what, headers, data=body)
            if answer.status not in (201, 202, 204):
                raise self._error(answer, what)
            location = self._location(answer, what)
            offset += length
        url = _with_query(location, digest=digest)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": "0"}
        answer = self._exchange("PUT", url, scopes, what, headers, data=b"", retry=False)
        self._expect(answer, what, 201)

    def _cancel_upload(self, repository: Repository, location: str, what: str) -> None:
        with contextlib.suppress(RegistryError, NetworkError):
            self._exchange("DELETE", location, (push_scope(repository),), what)

    def _location(self, answer: Answer, what: str) -> str:
        location = answer.headers.get("Location")
        if not location:
            raise RegistryError(f"{what}: the registry gave no upload location")
        return self._same_registry(urljoin(answer.url, location), what)

    def _same_registry(self, url: str, what: str) -> str:
        """Refuse URLs on other hosts: following them would leak our credentials or scope."""
        target = urlsplit(url)
        ours = urlsplit(self.base_url)
        if (target.scheme, target.netloc) != (ours.scheme, ours.netloc):
            raise RegistryError(f"{what}: the registry pointed to another host ({target.netloc})")
        return url

    def _repository_url(self, repository: Repository) -> str:
        path = checked_path(repository)  # before the ping: a bad path sends nothing
        return f"{self.base_url}/v2/{path}"

    def _manifest_url(self, reference: Reference) -> str:
        kind = "digest" if reference.digest else "tag"
        identifier = segment(reference.identifier, kind)
        return f"{self._repository_url(reference.repository)}/manifests/{identifier}"

    def _blob_url(self, repository: Repository, digest: str) -> str:
        identifier = segment(digest, "digest")
        return f"{self._repository_url(repository)}/blobs/{identifier}"

    def _exchange(
        self,
        method: str,
        url: str,
        scopes: tuple[str, ...],
        what: str,
        headers: Mapping[str, str] | None = None,
        *,
        params: Mapping[str, str] | None = None,
        data: bytes | Readable | None = None,
        retry: bool | None = None,
        limit: int = _ERROR_LIMIT,
    ) -> Answer:
        """One request with our credentials, its whole answer read within `limit` bytes.

        On a 401 the token (or, when the registry refused our Basic credentials, the
        credentials) is renewed once and the request resent. Every URL reaching here is
        on the registry's own host (`_same_registry`), so the `Authorization` header never
        travels elsewhere; requests drops it on redirects to other hosts.
        """
        auth = self._connected().authenticator

        def attempt(value: str | None) -> Answer:
            merged = {**(headers or {}), **({"Authorization": value} if value else {})}
            return self._transport.fetch(
                method,
                url,
                what=what,
                limit=limit,
                headers=merged,
                params=params,
                data=data,
                retry=retry,
            )

        sent = auth.authorization(scopes)
        answer = attempt(sent)
        if answer.status != 401 or hasattr(data, "read"):
            return answer
        challenge = answer.headers.get("WWW-Authenticate")
        if not auth.unauthorized(scopes, challenge, sent):
            return answer
        return attempt(auth.authorization(auth.scopes_with(scopes, challenge)))

    def _connected(self) -> _Connection:
        with self._connect_lock:
            if self._connection is None:
                self._connection = self._ping()
            return self._connection

    def _ping(self) -> _Connection:
        """GET /v2/ over https, then plain http where allowed; the first answer fixes the scheme.

        When https failed but plain http got an HTTP answer, that answer is the report: the
        server speaks plain HTTP. Only a certificate failure (the server does speak TLS) or
        no answer at all keeps the TLS reason.
        """
        what = f"ping {self.registry}"
        failures: list[NetworkError] = []
        schemes = ("https", "http") if self._plain_http_allowed else ("https",)
        for scheme in schemes:
            base = f"{scheme}://{self._wire_host}"
            try:
                answer = self._transport.fetch("GET", f"{base}/v2/", what=what, limit=_ERROR_LIMIT)
            except NetworkError as exc:
                failures.append(exc)
                continue
            challenge = preferred_challenge(answer.headers.get("WWW-Authenticate", ""))
            if answer.status == 200 or (answer.status == 401 and challenge is not None):
                auth = Authenticator(self._transport, base, self._credentials, challenge)
                return _Connection(base, auth)
            if failures and _speaks_tls(failures[0]):
                break
            if answer.status == 401:
                raise AuthFailed(f"{what}: 401 with no challenge regwatch can answer", 401)
            raise self._error(answer, what)
        raise _combined(failures, self.registry)

    def _expect(self, answer: Answer, what: str, status: int) -> None:
        if answer.status != status:
            raise self._error(answer, what)

    def _error(self, answer: Answer, what: str) -> RegistryError:
        anonymous = self._credentials is None or self._credentials.current() is None
        return _status_error(answer, what, anonymous=anonymous)


@dataclass(frozen=True)
class _Connection:
    registry_url: str
    authenticator: Authenticator


def _combined(failures: list[NetworkError], registry: str) -> NetworkError:
    first = failures[0]
    if len(failures) == 1 or isinstance(first, TLSFailure):
        return first
    return type(failures[-1])(
        f"ping {registry}: https: {_tail(first)}; http: {_tail(failures[-1])}"
    )


def _speaks_tls(error: NetworkError) -> bool:
    """Whether an https failure shows a TLS server (its certificate was the problem)."""
    return isinstance(error, TLSFailure) and "certificate verify failed" in str(error)


def _tail(error: NetworkError) -> str:
    return str(error).split(": ", 1)[-1]


def _status_error(answer: Answer, what: str, *, anonymous: bool) -> RegistryError:
    status = answer.status
    detail = registry_errors(answer.body) or answer.reason.lower() or "error"
    message = f"{what}: {status} {detail}"
    if status == 401:
        if anonymous:
            hint = "the registry needs a username and password"
        elif _insufficient_scope(answer):
            hint = f"the credentials lack {_access_wanted(answer)} access"
        else:
            hint = "check username and password"
        return AuthFailed(f"{message}; {hint}", status)
    if status == 403:
        return AuthFailed(f"{message}; the credentials lack access", status)
    if status == 404:
        return NotFound(message, status)
    if status == 429:
        return RateLimited(f"{message}; still rate-limited after retrying", status)
    return RegistryError(message, status)


def _insufficient_scope(answer: Answer) -> bool:
    """Whether a 401 says the credentials are right but the token lacks the asked scope."""
    challenge = preferred_challenge(answer.headers.get("WWW-Authenticate", ""))
    return challenge is not None and challenge.params.get("error") == "insufficient_scope"


def _access_wanted(answer: Answer) -> str:
    challenge = preferred_challenge(answer.headers.get("WWW-Authenticate", ""))
    actions = {
        action
        for scope in (challenge.scopes if challenge else ())
        for action in scope.rpartition(":")[2].split(",")
    }
    return "push" if "push" in actions else "the needed"


def registry_errors(body: bytes) -> str:
    """`errors[].code` and message from a registry error body, as one readable phrase."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return ""
    errors = parsed.get("errors") if isinstance(parsed, dict) else None
    if not isinstance(errors, list):
        return ""
    phrases = []
    for error in errors:
        if not isinstance(error, dict):
            continue
        code = str(error.get("code", "")).strip()
        message = str(error.get("message", "")).strip()
        phrases.append(" ".join(part for part in (code, message and f"({message})") if part))
    return "; ".join(p for p in phrases if p)


_UNKNOWN_NAME = frozenset({"NAME_UNKNOWN", "NOT_FOUND"})


def _first_code(body: bytes) -> str | None:
    try:
        errors = json.loads(body).get("errors")
        return str(errors[0].get("code"))
    except (ValueError, AttributeError, IndexError, TypeError, RecursionError):
        return None


def next_page(link: str | None, url: str, what: str) -> str | None:
    """The next page a `Link` header names (spec §3.3.1): the URL between the first `<` and
    `>`, resolved against the request's URL; `rel` is not inspected, as in the Go resource."""
    if link is None or not link.strip():
        return None
    link = link.strip()
    end = link.find(">")
    if not link.startswith("<") or end == -1:
        raise RegistryError(f"{what}: the registry sent an invalid Link header")
    return urljoin(url, link[1:end])


def _error_answer(answer: Streamed, what: str) -> Answer:
    """A streamed error answer, read (capped) for its registry error codes."""
    body = answer.read(_ERROR_LIMIT)
    return Answer(answer.status, answer.reason, answer.headers, body, answer.url)


def _tags_from(answer: Answer, what: str) -> list[str]:
    try:
        body = json.loads(answer.body)
    except (ValueError, RecursionError):
        raise RegistryError(f"{what}: the registry answered with invalid JSON") from None
    tags = body.get("tags") if isinstance(body, dict) else None
    if tags is None:
        return []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise RegistryError(f"{what}: the registry's tag list is not a list of strings")
    return tags


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip()


def _verify_bytes(content: bytes, digest: str, size: int, what: str) -> None:
    if len(content) != size:
        raise DigestMismatch(f"{what}: content is {len(content)} bytes, expected {size}")
    actual = digest_of(content, digest.partition(":")[0])
    if actual != digest:
        raise DigestMismatch(f"{what}: content has digest {actual}, expected {digest}")


class _Slice:
    """The next `length` bytes of a stream, with a length requests can send as Content-Length."""

    def __init__(self, stream: Readable, length: int) -> None:
        self._stream = stream
        self._left = length

    def __len__(self) -> int:
        return self._left

    def read(self, size: int = -1) -> bytes:
        wanted = self._left if size < 0 else min(size, self._left)
        data = self._stream.read(wanted) if wanted else b""
        if wanted and not data:
            raise DigestMismatch(f"blob ended {self._left} bytes early")
        self._left -= len(data)
        return data


def _with_query(url: str, **extra: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *extra.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))

"""The exception tree; every failure a user can act on is one of these.

    RegwatchError
    ├── ConfigError              bad payload, reference, regex, constraint, CA certificate
    ├── NetworkError             the registry could not be talked to
    │   ├── Unreachable          DNS, refused, timeout: nobody answered
    │   │   └── ConnectionDropped   reset or truncated mid-conversation: worth retrying
    │   └── TLSFailure           handshake or certificate verification failed
    ├── RegistryError            the registry answered, but not with what we need
    │   ├── AuthFailed           401/403, token service refused, hostile realm
    │   ├── NotFound             unknown repository, manifest or blob
    │   ├── RateLimited          429 past the retry budget (at once in a daemon's poll)
    │   ├── DigestMismatch       content does not hash to the digest it was asked for
    │   └── UnsupportedMedia     a manifest or blob type regwatch cannot handle
    ├── ImageError               image content that cannot be applied
    │   └── HostileEntry         a layer entry that would escape its destination
    ├── StoreError               the event store refused
    │   ├── Conflict             another writer appended to the stream first
    │   └── SchemaNotCurrent     the database needs `regwatch migrate`
    ├── TrustError               content trust: a key, a signature or the notary server refused
    ├── NotRecorded              the log holds no answer (a tag absent at the moment asked)
    └── DeliveryFailed           a notification sink did not accept an event (it stays pending)

Messages are lower-case causal chains that name the host and repository involved and never
carry a header, token or password. Only front-end `main()` functions catch these.
"""

from __future__ import annotations


class RegwatchError(Exception):
    """Root of every error regwatch reports to a user as one line."""


class ConfigError(RegwatchError):
    """The user's input is wrong; retrying cannot help."""


class NetworkError(RegwatchError):
    """The conversation with a server broke before it could answer."""


class Unreachable(NetworkError):
    """The server could not be reached or hung up mid-answer."""


class ConnectionDropped(Unreachable):
    """The server hung up mid-conversation (reset, truncated body): transient."""


class TLSFailure(NetworkError):
    """TLS failed: usually a missing CA certificate."""


class CloudLoginFailed(RegwatchError):
    """A cloud registry login (ECR, ACR) failed before the registry was asked anything."""


class RegistryError(RegwatchError):
    """The registry answered with an error.

    `status` is the HTTP status when there was one, so callers can tell a retryable answer
    from a final one without parsing the message.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthFailed(RegistryError):
    """Credentials were refused or the challenge could not be answered safely."""


class NotFound(RegistryError):
    """The repository, manifest or blob does not exist (or is hidden from us)."""


class RateLimited(RegistryError):
    """The registry kept answering 429 until the retry budget ran out, or, where waiting is not
    wanted, answered 429 once. `retry_after` holds the seconds its `Retry-After` asked for."""

    def __init__(
        self, message: str, status: int | None = 429, *, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class DigestMismatch(RegistryError):
    """Downloaded bytes do not match the digest or size they were asked for."""


class UnsupportedMedia(RegistryError):
    """A manifest or blob has a media type regwatch does not handle."""


class ImageError(RegwatchError):
    """Image content is malformed and cannot be applied."""


class HostileEntry(ImageError):
    """A layer entry would create, change or delete something outside its destination."""


class StoreError(RegwatchError):
    """The event store could not do what was asked."""


class Conflict(StoreError):
    """Another writer appended to the stream first; reload and decide again."""


class SchemaNotCurrent(StoreError):
    """The database schema is older than this regwatch."""


class TrustError(RegwatchError):
    """Signing for content trust failed: a bad key or passphrase, metadata that does not
    verify, or a notary server that refused what we sent."""


class NotRecorded(RegwatchError):
    """The log has no answer to the question: `history --at T --tag TAG` of a tag absent at T."""


class DeliveryFailed(RegwatchError):
    """A notification sink refused or missed an event; its follower retries it later."""


def prefixed(exc: RegwatchError, prefix: str) -> RegwatchError:
    """The same error, of the same kind, with `prefix: ` in front: a step's causal chain."""
    if isinstance(exc, RateLimited):
        return RateLimited(f"{prefix}: {exc}", exc.status, retry_after=exc.retry_after)
    if isinstance(exc, RegistryError):
        return type(exc)(f"{prefix}: {exc}", exc.status)
    return type(exc)(f"{prefix}: {exc}")


def transient(exc: RegwatchError) -> bool:
    """Worth another whole attempt: rate limits, dropped connections, 5xx (spec §7)."""
    if isinstance(exc, RateLimited | ConnectionDropped):
        return True
    return isinstance(exc, RegistryError) and exc.status is not None and exc.status >= 500

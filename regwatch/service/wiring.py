"""What every use case shares: reaching a registry, and recording observations in the log."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from regwatch.config import Source
from regwatch.decide import RepoState, decide, fold
from regwatch.download import PlatformImage
from regwatch.errors import (
    ConfigError,
    Conflict,
    ConnectionDropped,
    RateLimited,
    RegistryError,
    RegwatchError,
)
from regwatch.events import SCHEMA_VERSION, Event, from_payload, to_payload
from regwatch.image.documents import Index
from regwatch.image.manifests import parse_manifest
from regwatch.net import Transport
from regwatch.observe import ImageFacts, Observation
from regwatch.refs import Repository, parse_registry
from regwatch.registry.auth import Credentials
from regwatch.registry.client import Manifest, RegistryClient

if TYPE_CHECKING:
    from regwatch.store.eventstore import EventStore, NewEvent


Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Access:
    """How to reach a registry: who we are and which roots we trust."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_certs: Sequence[str] = ()
    insecure: bool = False

    @property
    def credentials(self) -> Credentials | None:
        """Basic credentials only when both halves are given, as the Go resource does."""
        if self.username and self.password:
            return Credentials(self.username, self.password)
        return None


def connect(registry: str, access: Access, transport: Transport | None = None) -> RegistryClient:
    return RegistryClient(
        registry,
        transport or Transport(ca_certs=access.ca_certs),
        access.credentials,
        insecure=access.insecure,
    )


def open_store(source: Source) -> EventStore:
    """The source's store, or a throw-away one; close it with `with`."""
    # Imported here: SQLAlchemy and Alembic add ~0.4 s to start-up, which `tags` and `digest`
    # never need.
    from regwatch.store.migrate import open_store  # noqa: PLC0415

    return open_store(source.store)


def load_state(store: EventStore, stream: str) -> tuple[RepoState, int]:
    stored = store.load(stream)
    events = (from_payload(e.kind, e.schema_version, e.payload) for e in stored)
    return fold(events), (stored[-1].version if stored else 0)


def record(
    store: EventStore,
    stream: str,
    state: RepoState,
    version: int,
    observation: Observation,
    extra: Sequence[Event] = (),
) -> RepoState:
    """Append what the observation changed (plus `extra`); on a conflict, reload and redo once."""

    def append(state: RepoState, version: int) -> list[Event]:
        events = decide(state, observation)
        new = [new_event(e, observation.taken_at) for e in (*events, *extra)]
        store.append(stream, version, new)
        return events

    try:
        events = append(state, version)
    except Conflict:
        state, version = load_state(store, stream)
        events = append(state, version)
    return fold(events, state)


def new_event(event: Event, observed_at: datetime) -> NewEvent:
    from regwatch.store.eventstore import NewEvent  # noqa: PLC0415  # see open_store

    return NewEvent(
        kind=event.kind,
        payload=to_payload(event),
        observed_at=observed_at,
        schema_version=SCHEMA_VERSION[event.kind],
    )


def refuse_unsupported(source: Source) -> None:
    if source.aws_region:
        raise ConfigError("cannot authenticate with ECR: ECR support (aws_region) is not built yet")
    if source.azure_acr:
        raise ConfigError("cannot authenticate with ACR: ACR support (azure_acr) is not built yet")


def mirror_of(origin: Repository, source: Source) -> tuple[Repository, Access] | None:
    """The mirror applies to Docker Hub images only, with its own credentials (spec §4)."""
    mirror = source.registry_mirror
    if mirror is None or not mirror.host or not origin.is_docker_hub:
        return None
    try:
        repository = origin.on_registry(parse_registry(mirror.host))
    except ConfigError as exc:
        raise ConfigError(f"failed to resolve mirror: parse mirror registry: {exc}") from None
    access = Access(mirror.username, mirror.password, source.ca_certs, source.insecure)
    return repository, access


def access_of(source: Source) -> Access:
    return Access(source.username, source.password, source.ca_certs, source.insecure)


def prefixed(exc: RegwatchError, prefix: str) -> RegwatchError:
    if isinstance(exc, RegistryError):
        return type(exc)(f"{prefix}: {exc}", exc.status)
    return type(exc)(f"{prefix}: {exc}")


def transient(exc: RegwatchError) -> bool:
    """Worth another whole attempt: rate limits, dropped connections, 5xx (spec §7)."""
    if isinstance(exc, RateLimited | ConnectionDropped):
        return True
    return isinstance(exc, RegistryError) and exc.status is not None and exc.status >= 500


@dataclass(frozen=True)
class Metadata:
    name: str
    value: str


_FRACTION = re.compile(r"(\.\d{6})\d+")


def created_at(value: str | None) -> datetime | None:
    """The config's RFC 3339 `created` (nanoseconds cut to microseconds); None when absent."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def image_facts(top: Manifest, image: PlatformImage | None) -> ImageFacts:
    """What a manifest, and the config of its platform image when fetched, say about a digest.

    `top` came through an `ImageSource`, which validated it on arrival.
    """
    document = parse_manifest(top.body, top.descriptor.media_type, top.descriptor.digest)
    return ImageFacts(
        digest=top.descriptor.digest,
        media_type=top.descriptor.media_type,
        size=top.descriptor.size,
        created=created_at(image.config.created) if image else None,
        platforms=platforms_of(document) if isinstance(document, Index) else (),
        blobs=(image.config_digest, *(layer.digest for layer in image.layers)) if image else (),
    )


def platforms_of(index: Index) -> tuple[tuple[str, str, str | None, str], ...]:
    """(os, architecture, variant, digest) of each entry that names its platform."""
    return tuple(
        (child.platform.os, child.platform.architecture, child.platform.variant, child.digest)
        for child in index.entries
        if child.platform is not None
    )

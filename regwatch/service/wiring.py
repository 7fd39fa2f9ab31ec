"""What every use case shares: reaching a registry, and recording observations in the log."""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from regwatch.config import Source
from regwatch.decide import (
    SNAPSHOT_VERSION,
    RepoState,
    decide,
    fold,
    from_snapshot,
    snapshot_of,
)
from regwatch.download import PlatformImage
from regwatch.errors import (
    ConfigError,
    Conflict,
    ConnectionDropped,
    RateLimited,
    RegistryError,
    RegwatchError,
    StoreError,
)
from regwatch.events import SCHEMA_VERSION, Event, from_payload, run_stream, to_payload
from regwatch.image.documents import Index
from regwatch.image.manifests import parse_manifest
from regwatch.observe import ImageFacts, Observation
from regwatch.refs import Repository, parse_registry
from regwatch.registry.client import Manifest
from regwatch.service.access import Access as Access
from regwatch.service.access import connect as connect

if TYPE_CHECKING:
    from regwatch.store.eventstore import EventStore, NewEvent


log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def open_store(source: Source) -> EventStore:
    """The source's store, or a throw-away one; close it with `with`.

    A throw-away store is created from the metadata, so only a persistent one pays for Alembic.
    """
    # Imported here: SQLAlchemy adds ~0.2 s to start-up and Alembic as much again, which
    # `tags`, `digest` and a check without a store never need.
    if not source.store:
        from regwatch.store.scratch import open_scratch_store  # noqa: PLC0415

        return open_scratch_store()
    from regwatch.store.migrate import open_store  # noqa: PLC0415

    return open_store(source.store)


def load_state(store: EventStore, stream: str) -> tuple[RepoState, int]:
    """The stream's folded state and the version it was folded at (0 for a new stream).

    The stream's snapshot, when there is one this regwatch can read, plus the events after it:
    what a load costs does not grow with the stream, and job runs live in another stream.
    """
    snapshot = store.snapshot(stream)
    state, version = None, 0
    if snapshot is not None and snapshot.schema_version == SNAPSHOT_VERSION:
        state, version = from_snapshot(snapshot.state), snapshot.version
    stored = store.load(stream, after_version=version)
    events = (from_payload(e.kind, e.schema_version, e.payload) for e in stored)
    return fold(events, state), (stored[-1].version if stored else version)


RECORD_ATTEMPTS: Final = 12
"""Appends one `record` tries before it gives up on a stream that other writers keep winning."""

_RECORD_BACKOFF: Final = (0.01, 0.25)
"""Seconds before a retry: the first delay, and the cap it doubles towards (then jittered)."""


def record(
    store: EventStore,
    stream: str,
    state: RepoState,
    version: int,
    observation: Observation,
    extra: Sequence[Event] = (),
    *,
    runs: Sequence[Event] = (),
    sleep: Callable[[float], None] = time.sleep,
) -> RepoState:
    """Append what the observation changes in `state` (plus `extra`); the state after it.

    `runs` (`PollSucceeded`, `PollFailed`) go to the repository's run stream in the same
    transaction, and the new state's snapshot replaces the stream's old one.

    Parallel steps share a store, so another writer may append between our read and our
    append. The loser re-reads the stream and decides again on what is there now, so a fact
    another step recorded is not recorded twice; after `RECORD_ATTEMPTS` lost races it raises
    `Conflict`.
    """
    for attempt in range(1, RECORD_ATTEMPTS + 1):
        from regwatch.store.eventstore import Snapshot  # noqa: PLC0415  # see open_store

        events = [*decide(state, observation), *extra]
        after = fold(events, state)
        new = [new_event(e, observation.taken_at) for e in events]
        snapshot = Snapshot(version + len(new), SNAPSHOT_VERSION, snapshot_of(after))
        run_events = [new_event(e, observation.taken_at) for e in runs]
        try:
            store.append(
                stream, version, new, snapshot=snapshot, runs=(run_stream(stream), run_events)
            )
        except Conflict:
            if attempt == RECORD_ATTEMPTS:
                break
            first, cap = _RECORD_BACKOFF
            sleep(min(cap, first * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5))  # noqa: S311
            state, version = load_state(store, stream)
            continue
        return after
    raise Conflict(
        f"record to stream {stream}: other writers appended first {RECORD_ATTEMPTS} times"
        " in a row; gave up"
    )


def record_run(store: EventStore, stream: str, run: Event, observed_at: datetime) -> None:
    """Append a job run alone (a failed poll decides nothing); a store that fails is a warning,
    so the poll's own error stays the one the user reads.
    """
    try:
        store.append(run_stream(stream), None, [new_event(run, observed_at)])
    except StoreError as exc:
        log.warning("recording the run of %s in the store failed: %s", stream, exc)


def record_aside(
    source: Source, stream: str, observation: Observation, extra: Sequence[Event] = ()
) -> None:
    """Record what `in` or `out` saw. The log is their audit trail, not their work: a store
    that fails costs a warning, never the download or push the step is for.
    """
    try:
        with open_store(source) as store:
            state, version = load_state(store, stream)
            record(store, stream, state, version, observation, extra)
    except StoreError as exc:
        log.warning("recording %s in the store failed; carrying on without it: %s", stream, exc)


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

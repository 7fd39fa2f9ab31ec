"""`poll`: observe one repository, decide what changed, append it with the run, in one go.

What every front end's watching comes down to: a Concourse check is a poll and a projection,
the daemon polls each due watch. With a store, the poll's tag events, the stream's new
snapshot and a `PollSucceeded` are one transaction; a poll that fails after reaching out is a
`PollFailed` carrying the line the user read. Without a store nothing persists, so nothing is
recorded: the poll decides and folds on in-memory state.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from regwatch.decide import RepoState, decide, fold
from regwatch.errors import (
    ConfigError,
    ImageError,
    NotFound,
    RateLimited,
    RegwatchError,
    StoreError,
    UnsupportedMedia,
)
from regwatch.events import Event, PollFailed, PollSucceeded
from regwatch.image.manifests import wanted_platform
from regwatch.observe import ImageFacts, Observation, observe
from regwatch.projections.coverage import covering
from regwatch.refs import Reference, Repository, is_tag, parse_digest
from regwatch.registry.client import RegistryClient
from regwatch.registry.images import ImageSource
from regwatch.service.facts import image_facts
from regwatch.service.recording import (
    first_success,
    last_success,
    load_state,
    record,
    record_run,
)
from regwatch.specs import PlatformChoice, TagDigest, WatchSpec

if TYPE_CHECKING:
    from regwatch.service.app import Service

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Poll:
    """What one poll saw, and the repository's state once it was recorded."""

    repository: Repository
    observation: Observation
    state: RepoState
    events: tuple[Event, ...] = ()
    """What the poll appended to the repository's stream (nothing without a store)."""


def poll(
    service: Service,
    spec: WatchSpec,
    cursor: TagDigest | None,
    *,
    failed: str | None = None,
    watch: str | None = None,
) -> Poll:
    """Poll `spec.repository` with `spec.access`; `failed` words a failure in the run stream,
    whose runs name `watch` (the daemon's watch; None for a Concourse step).

    A configuration error is no poll and a store failure is not the registry's: neither is
    recorded as a failed run.
    """
    repository = spec.repository
    failed = failed or f"polling {repository} failed"
    stream = repository.name
    transport = service.clients.transport(spec.access)
    sent_before = transport.requests_sent
    started = time.monotonic()
    store = service.store() if service.persistent else None

    def spent() -> tuple[int, float]:
        return transport.requests_sent - sent_before, round(time.monotonic() - started, 3)

    turn = (stream, spec.selection)
    try:
        service.clients.admit(repository.registry)
        client = service.clients.client(repository.registry, spec.access)
        reader = _Reader(client, repository, spec.platform)
        state, version = (RepoState(), 0) if store is None else load_state(store, stream)
        last_poll = service.polled_at.get(turn)
        if spec.rescan is not None and last_poll is None and store is not None:
            last_poll = last_success(store, stream)
        observation = observe(
            reader,
            spec.selection,
            cursor,
            stream=stream,
            now=service.now,
            concurrency=spec.concurrency,
            known_images=frozenset(state.images),
            known_tags=state.tags,
            rescan=spec.rescan,
            last_poll=last_poll,
            inspection_waits=lambda: transport.rate_limits.low(repository.wire_host),
            inspect_moves=store is not None,
            platform=reader.platform,
        )
        requests, seconds = spent()
        if store is None:
            service.polled_at[turn] = observation.taken_at
            return Poll(repository, observation, fold(decide(state, observation), state))
        run = covering(
            PollSucceeded(
                requests=requests,
                duration_seconds=seconds,
                source=service.polled_by,
                daemon=service.daemon,
                watch=watch,
                initial=first_success(store, stream, watch),
            ),
            observation,
        )
        state, appended = record(
            store, stream, state, version, observation, runs=[run], sleep=service.sleep
        )
        service.polled_at[turn] = observation.taken_at
        return Poll(repository, observation, state, tuple(appended))
    except (ConfigError, StoreError):
        raise
    except RegwatchError as exc:
        if isinstance(exc, RateLimited):
            service.clients.pause(repository.registry, exc)
        if store is not None:
            requests, seconds = spent()
            run_failed = PollFailed(
                error=f"{failed}: {exc}",
                requests=requests,
                duration_seconds=seconds,
                source=service.polled_by,
                daemon=service.daemon,
                watch=watch,
            )
            record_run(store, stream, run_failed, service.now())
        raise


class _Reader:
    """The registry client seen through `observe.RegistryReader`, for one repository."""

    def __init__(
        self, client: RegistryClient, repository: Repository, platform: PlatformChoice | None
    ) -> None:
        self._client = client
        self._repository = repository
        self._images = ImageSource(client, repository)
        self._platform = wanted_platform(
            platform.architecture if platform else None, platform.os if platform else None
        )
        self.platform = str(self._platform) if platform else None
        """The watch's explicit platform as its tag events name it; None when it has none."""

    def list_tags(self) -> list[str]:
        """The listing without names no registry can hold, which no request may carry."""
        listed = self._client.list_tags(self._repository)
        valid = [tag for tag in listed if is_tag(tag)]
        if len(valid) < len(listed):
            log.warning(
                "%s listed %d invalid tag name(s); ignoring them",
                self._repository,
                len(listed) - len(valid),
            )
        return valid

    def digest(self, reference: str) -> str | None:
        ref = self._reference(reference)
        descriptor = self._client.resolve(ref)
        return descriptor.digest if descriptor else None

    def inspect(self, digest: str) -> ImageFacts:
        """Manifest, the platform's image for an index, and its config's `created` (§3.4)."""
        top = self._images.manifest(digest)
        return image_facts(top, self._images.platform_image(top, self._platform))

    def manifest_facts(self, digest: str, *, whole: bool = False) -> ImageFacts | None:
        """One manifest GET (with `whole`, all `inspect` reads): a manifest that is gone, or one
        regwatch cannot read, is no fact and never fails a poll that only describes a move."""
        try:
            return (
                self.inspect(digest) if whole else image_facts(self._images.manifest(digest), None)
            )
        except (NotFound, UnsupportedMedia, ImageError) as exc:
            log.debug("describing %s@%s: %s", self._repository, digest, exc)
            return None

    def _reference(self, text: str) -> Reference:
        if text.startswith(("sha256:", "sha512:")):
            return Reference(self._repository, digest=parse_digest(text))
        return Reference(self._repository, tag=text)

"""Concourse `check`: observe, decide, append, then project the versions from the log.

Without a `store` nothing persists, so nothing is recorded: the check decides and folds on
in-memory state and opens no database at all.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING

from regwatch.config import Source, Version
from regwatch.decide import RepoState, decide, fold
from regwatch.download import ImageSource
from regwatch.errors import ConfigError, RegwatchError, StoreError
from regwatch.events import PollFailed, PollSucceeded
from regwatch.image.manifests import wanted_platform
from regwatch.net import Transport
from regwatch.observe import ImageFacts, observe
from regwatch.projections.versions import check_versions
from regwatch.refs import Reference, Repository, is_tag, parse_digest, parse_repository
from regwatch.registry.client import RegistryClient

if TYPE_CHECKING:
    from regwatch.store.eventstore import EventStore
from regwatch.service.wiring import (
    Access,
    Clock,
    access_of,
    connect,
    image_facts,
    load_state,
    mirror_of,
    open_store,
    prefixed,
    record,
    record_run,
    refuse_unsupported,
    utc_now,
)

log = logging.getLogger(__name__)


def check(source: Source, cursor: Version | None, *, now: Clock = utc_now) -> list[Version]:
    """Concourse `check`: the mirror first for Docker Hub images, then the origin (spec §3–4)."""
    refuse_unsupported(source)
    if source.tag and source.tag_regex:
        log.warning("tag_regex is ignored: tag %r is set, and tag wins (tag mode)", source.tag)
    origin = _parse_origin(source)
    mirror = mirror_of(origin, source)
    with open_store(source) if source.store else contextlib.nullcontext() as store:
        if mirror is not None:
            mirror_repo, mirror_access = mirror
            failed = f"checking mirror {mirror_repo} failed"
            try:
                found = _check_repository(
                    store, mirror_repo, mirror_access, source, cursor, now, failed
                )
            except RegwatchError as exc:
                log.warning("%s: %s", failed, exc)
            else:
                if found:
                    return found
                log.warning("%s: tag not found", failed)
        failed = f"checking origin {source.repository} failed"
        try:
            return _check_repository(store, origin, access_of(source), source, cursor, now, failed)
        except RegwatchError as exc:
            raise prefixed(exc, failed) from exc


def _check_repository(
    store: EventStore | None,
    repository: Repository,
    access: Access,
    source: Source,
    cursor: Version | None,
    now: Clock,
    failed: str,
) -> list[Version]:
    """Observe one repository, record what changed under its own stream, project.

    A mirror's observations go to the mirror's stream: the origin's history holds only what
    the origin said. A poll that fails after reaching out is a `PollFailed` in the
    repository's run stream, carrying `failed` and the error as the user reads them.
    """
    transport = Transport(ca_certs=access.ca_certs, pool_size=max(16, source.concurrency))
    stream = repository.name
    started = time.monotonic()
    try:
        reader = _Reader(connect(repository.registry, access, transport), repository, source)
        state, version = (RepoState(), 0) if store is None else load_state(store, stream)
        observation = observe(
            reader, source, cursor, stream=stream, now=now, known_images=frozenset(state.images)
        )
        poll = PollSucceeded(
            requests=transport.requests_sent, duration_seconds=round(time.monotonic() - started, 3)
        )
        if store is None:
            state = fold(decide(state, observation), state)
        else:
            state = record(store, stream, state, version, observation, runs=[poll])
        return check_versions(state, observation, source, cursor)
    except (ConfigError, StoreError):
        raise  # no poll happened, or the store is what failed: nothing to record
    except RegwatchError as exc:
        poll_failed = PollFailed(
            error=f"{failed}: {exc}",
            requests=transport.requests_sent,
            duration_seconds=round(time.monotonic() - started, 3),
        )
        if store is not None:
            record_run(store, stream, poll_failed, now())
        raise
    finally:
        transport.close()


def _parse_origin(source: Source) -> Repository:
    try:
        return parse_repository(source.repository)
    except ConfigError as exc:
        raise ConfigError(
            f"checking origin {source.repository} failed: resolve repository: {exc}"
        ) from None


class _Reader:
    """The registry client seen through `observe.RegistryReader`, for one repository."""

    def __init__(self, client: RegistryClient, repository: Repository, source: Source) -> None:
        self._client = client
        self._repository = repository
        self._images = ImageSource(client, repository)
        self._platform = wanted_platform(
            source.platform.architecture if source.platform else None,
            source.platform.os if source.platform else None,
        )

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

    def _reference(self, text: str) -> Reference:
        if text.startswith(("sha256:", "sha512:")):
            return Reference(self._repository, digest=parse_digest(text))
        return Reference(self._repository, tag=text)

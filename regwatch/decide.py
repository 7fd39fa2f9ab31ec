"""A repository's state as a fold over its events, and the events an observation implies."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from regwatch.events import (
    Event,
    ImageInspected,
    PlatformImage,
    TagAppeared,
    TagDisappeared,
    TagMoved,
)
from regwatch.observe import Observation


@dataclass(frozen=True)
class RepoState:
    """What the log says a repository holds now: tag → digest, and what each image is."""

    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    images: Mapping[str, ImageInspected] = field(default_factory=lambda: MappingProxyType({}))


def evolve(state: RepoState, event: Event) -> RepoState:
    match event:
        case TagAppeared(tag=tag, digest=digest) | TagMoved(tag=tag, new_digest=digest):
            return replace(state, tags=MappingProxyType({**state.tags, tag: digest}))
        case TagDisappeared(tag=tag):
            remaining = {t: d for t, d in state.tags.items() if t != tag}
            return replace(state, tags=MappingProxyType(remaining))
        case ImageInspected(digest=digest):
            return replace(state, images=MappingProxyType({**state.images, digest: event}))
        case _:
            return state


def fold(events: Iterable[Event], state: RepoState | None = None) -> RepoState:
    current = state or RepoState()
    for event in events:
        current = evolve(current, event)
    return current


def decide(state: RepoState, observation: Observation) -> list[Event]:
    """The facts an observation adds to the log; nothing when nothing changed.

    A tag disappears only when this observation looked it up and found nothing, or made a full
    listing that lacks it.
    """
    events: list[Event] = []
    for tag, digest in observation.resolved.items():
        old = state.tags.get(tag)
        if old is None:
            events.append(TagAppeared(tag=tag, digest=digest))
        elif old != digest:
            events.append(TagMoved(tag=tag, old_digest=old, new_digest=digest))
    listed = set(observation.listed) if observation.listed is not None else None
    for tag, digest in state.tags.items():
        if tag in observation.missing or (listed is not None and tag not in listed):
            events.append(TagDisappeared(tag=tag, digest=digest))
    for facts in observation.inspected:
        if facts.digest in state.images:
            continue
        platforms = tuple(
            PlatformImage(os=os, architecture=arch, variant=variant, digest=child)
            for os, arch, variant, child in facts.platforms
        )
        events.append(
            ImageInspected(
                digest=facts.digest,
                media_type=facts.media_type,
                size=facts.size,
                created=facts.created,
                platforms=platforms,
                blobs=facts.blobs,
            )
        )
    return events

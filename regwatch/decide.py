"""A repository's state as a fold over its events, and the events an observation implies."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from regwatch.events import (
    Event,
    ImageInspected,
    PlatformImage,
    TagAppeared,
    TagDisappeared,
    TagMoved,
    to_payload,
)
from regwatch.observe import Observation


@dataclass(frozen=True)
class RepoState:
    """What the log says a repository holds now: tag → digest, and what each image is."""

    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    images: Mapping[str, ImageInspected] = field(default_factory=lambda: MappingProxyType({}))


def evolve(tags: dict[str, str], images: dict[str, ImageInspected], event: Event) -> None:
    """Apply one event to the maps being folded, in place: O(1) per event, never a copy."""
    match event:
        case TagAppeared(tag=tag, digest=digest) | TagMoved(tag=tag, new_digest=digest):
            tags[tag] = digest
        case TagDisappeared(tag=tag):
            tags.pop(tag, None)
        case ImageInspected(digest=digest):
            images[digest] = event
        case _:
            pass


def fold(events: Iterable[Event], state: RepoState | None = None) -> RepoState:
    """`state` (or nothing) with `events` applied; the maps are copied once, not per event,
    and not at all when there is no event.
    """
    pending = iter(events)
    first = next(pending, None)
    if first is None:
        return state or RepoState()
    tags = dict(state.tags) if state else {}
    images = dict(state.images) if state else {}
    evolve(tags, images, first)
    for event in pending:
        evolve(tags, images, event)
    return RepoState(tags=MappingProxyType(tags), images=MappingProxyType(images))


SNAPSHOT_VERSION: Final = 1
"""The shape of `snapshot_of`'s payload; a snapshot of another version is ignored (re-folded)."""


def snapshot_of(state: RepoState) -> dict[str, Any]:
    """The folded state as JSON, stored beside its stream version so loading skips the fold."""
    return {
        "tags": dict(state.tags),
        "images": {digest: to_payload(image) for digest, image in state.images.items()},
    }


def from_snapshot(payload: Mapping[str, Any]) -> RepoState:
    """The state `snapshot_of` wrote (images in the current schema of `ImageInspected`)."""
    images = {d: ImageInspected.model_validate(i) for d, i in payload["images"].items()}
    return RepoState(tags=MappingProxyType(payload["tags"]), images=MappingProxyType(images))


def decide(state: RepoState, observation: Observation) -> list[Event]:
    """The facts an observation adds to the log; nothing when nothing changed.

    A tag disappears only when this observation looked it up and found nothing, or made a full
    listing that lacks it.
    """
    events: list[Event] = []
    platform = observation.platform
    children = _children(state, observation) if platform else {}
    for tag, digest in observation.resolved.items():
        old = state.tags.get(tag)
        if old is None:
            events.append(TagAppeared(tag=tag, digest=digest, platform=platform))
        elif old != digest:
            changed = _platform_changed(children, old, digest, platform) if platform else None
            events.append(
                TagMoved(
                    tag=tag,
                    old_digest=old,
                    new_digest=digest,
                    platform=platform,
                    platform_changed=changed,
                )
            )
    listed = set(observation.listed) if observation.listed is not None else None
    for tag, digest in state.tags.items():
        if tag in observation.missing or (listed is not None and tag not in listed):
            events.append(TagDisappeared(tag=tag, digest=digest, platform=platform))
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


_Children = Mapping[str, tuple[tuple[str, str, str | None, str], ...]]


def _children(state: RepoState, observation: Observation) -> _Children:
    """Each known manifest's children as (os, architecture, variant, digest); () for an image."""
    known: dict[str, tuple[tuple[str, str, str | None, str], ...]] = {
        digest: tuple((p.os, p.architecture, p.variant, p.digest) for p in image.platforms)
        for digest, image in state.images.items()
    }
    known.update((facts.digest, facts.platforms) for facts in observation.inspected)
    return known


def _platform_changed(children: _Children, old: str, new: str, platform: str) -> bool | None:
    """Whether `platform`'s own image differs between two manifests; None when either is not
    known (gone before it could be inspected) or lacks the platform."""
    before, after = _image_for(children, old, platform), _image_for(children, new, platform)
    return None if before is None or after is None else before != after


def _image_for(children: _Children, digest: str, platform: str) -> str | None:
    """The manifest `platform` runs from: an index's first matching child (the variant counts
    only when the platform names one, as when pulling), or an image itself."""
    found = children.get(digest)
    if found is None:
        return None
    if not found:
        return digest
    os, architecture, *variant = platform.split("/")
    for child_os, child_architecture, child_variant, child in found:
        if (child_os, child_architecture) == (os, architecture) and (
            not variant or child_variant == variant[0]
        ):
            return child
    return None

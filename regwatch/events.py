"""The persisted vocabulary: past-tense facts about a repository, each with a stable `kind`.

These payloads are a contract with every database ever written: a change to a model needs a
new `SCHEMA_VERSION` for its kind and an upcaster from the old payload, tested on an old payload.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from regwatch.errors import StoreError


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TagAppeared(_Event):
    """A tag was seen for the first time (or again after it had disappeared)."""

    kind: Literal["TagAppeared"] = "TagAppeared"
    tag: str
    digest: str
    platform: str | None = None
    """The polling watch's explicit platform (`os/arch[/variant]`); None when it has none."""


class TagMoved(_Event):
    """A tag now points at another manifest."""

    kind: Literal["TagMoved"] = "TagMoved"
    tag: str
    old_digest: str
    new_digest: str
    platform: str | None = None
    platform_changed: bool | None = None
    """With a `platform`: whether that platform's own image differs between the old and the new
    manifest (False when only the index around it changed); None when unknown or no platform."""


class TagDisappeared(_Event):
    """A full listing no longer shows the tag, or looking it up found nothing."""

    kind: Literal["TagDisappeared"] = "TagDisappeared"
    tag: str
    digest: str
    platform: str | None = None


class PlatformImage(_Event):
    """One child of an index: its platform and manifest digest."""

    os: str
    architecture: str
    variant: str | None = None
    digest: str


class ImageInspected(_Event):
    """What a manifest (and, for one image, its config) told us; inspected once per digest."""

    kind: Literal["ImageInspected"] = "ImageInspected"
    digest: str
    media_type: str
    size: int
    created: datetime | None = None
    platforms: tuple[PlatformImage, ...] = ()
    blobs: tuple[str, ...] = ()
    """Config and layer digests of the image fetched: where `out` can mount them from."""


class ImagePushed(_Event):
    """regwatch pushed this manifest under these tags."""

    kind: Literal["ImagePushed"] = "ImagePushed"
    digest: str
    tags: tuple[str, ...]
    blobs: tuple[str, ...] = ()


class PollSucceeded(_Event):
    """One observation of the repository completed: what it cost. In `run_stream` only."""

    kind: Literal["PollSucceeded"] = "PollSucceeded"
    requests: int
    duration_seconds: float
    source: str = "check"
    """What polled: `check` (a Concourse step) or `watch` (the daemon)."""
    daemon: str | None = None
    """Which daemon process polled (`host:pid`), for `status` and a fleet; None for a step."""
    watch: str | None = None
    """The daemon watch that polled (its config name); None for a Concourse step."""
    initial: bool = False
    """The watch's first successful poll per the log: its tag events are announced as one
    summary, not one by one."""
    tag_versions: tuple[int, int] | None = None
    """The first and last version this poll appended to the repository's stream; None when it
    appended nothing there."""
    listed: tuple[str, ...] | None = None
    """The full listing, in the registry's order, when the poll made one (and it held at most
    `LISTING_KEPT` tags); None otherwise. With `resolved` and `missing`, what the poll covered:
    a Concourse check with `max_age` is answered from the log only within that."""
    resolved: tuple[str, ...] = ()
    """Every tag this poll looked up and found, whatever the mode; a daemon's economical poll
    names only the tags it sent a request for, never one it kept from earlier polls."""
    missing: tuple[str, ...] = ()
    """Tags this poll looked up and the registry did not have."""
    digests_present: tuple[str, ...] = ()
    """Digests looked up (a tag-mode cursor whose tag moved) and found."""
    digests_absent: tuple[str, ...] = ()
    """Digests looked up and not found."""


class PollFailed(_Event):
    """One observation of the repository failed; the error as the user saw it (one line).

    In `run_stream` only.
    """

    kind: Literal["PollFailed"] = "PollFailed"
    error: str
    requests: int
    duration_seconds: float
    source: str = "check"
    daemon: str | None = None
    watch: str | None = None


Event = Annotated[
    TagAppeared
    | TagMoved
    | TagDisappeared
    | ImageInspected
    | ImagePushed
    | PollSucceeded
    | PollFailed,
    Field(discriminator="kind"),
]

SCHEMA_VERSION: Mapping[str, int] = {
    "TagAppeared": 2,
    "TagMoved": 2,
    "TagDisappeared": 2,
    "ImageInspected": 1,
    "ImagePushed": 1,
    "PollSucceeded": 4,
    "PollFailed": 3,
}

LISTING_KEPT: Final = 10_000
"""The longest listing a run keeps: past it a run says it did not list (a check then polls)
rather than write a payload of hundreds of kilobytes per poll."""

RUN_STREAM_SUFFIX: Final = "#runs"
"""No repository name holds a `#`, so no tag stream ends like this."""


def run_stream(stream: str) -> str:
    """Where a repository's job runs go: beside its tag stream, not in it.

    Retention can then drop old runs without renumbering the tag history, and loading the
    repository's tags never reads them.
    """
    return stream + RUN_STREAM_SUFFIX


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def _polled_by_no_daemon(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 1 runs came from Concourse steps only: no daemon polled them."""
    return {**payload, "daemon": None}


def _polled_by_no_watch(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 2 runs named no watch, so none of them can be a watch's first poll."""
    return {**payload, "watch": None}


def _succeeded_without_watch(payload: dict[str, Any]) -> dict[str, Any]:
    return {**_polled_by_no_watch(payload), "initial": False, "tag_versions": None}


def _covered_nothing(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 3 runs did not say what they listed or resolved: they prove nothing fresh."""
    return {
        **payload,
        "listed": None,
        "resolved": [],
        "missing": [],
        "digests_present": [],
        "digests_absent": [],
    }


def _no_platform(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 1 tag events did not say which platform their watch asked for."""
    return {**payload, "platform": None}


def _no_platform_known(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 1 moves recorded no platform, so whether its image changed is unknown."""
    return {**payload, "platform": None, "platform_changed": None}


UPCASTERS: Mapping[tuple[str, int], Upcaster] = {
    ("TagAppeared", 1): _no_platform,
    ("TagMoved", 1): _no_platform_known,
    ("TagDisappeared", 1): _no_platform,
    ("PollSucceeded", 1): _polled_by_no_daemon,
    ("PollFailed", 1): _polled_by_no_daemon,
    ("PollSucceeded", 2): _succeeded_without_watch,
    ("PollFailed", 2): _polled_by_no_watch,
    ("PollSucceeded", 3): _covered_nothing,
}
"""(kind, schema version) → a function lifting that payload to the next schema version."""

_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def to_payload(event: Event) -> dict[str, Any]:
    """The JSON object stored for an event (its `kind` is stored beside it, not inside)."""
    return event.model_dump(mode="json", exclude={"kind"})


def from_payload(kind: str, schema_version: int, payload: Mapping[str, Any]) -> Event:
    """Rebuild an event from storage, upcasting old payloads to the current schema.

    A kind or schema version this regwatch does not know was written by a newer regwatch:
    that is a `StoreError` saying so, not a validation failure.
    """
    known = SCHEMA_VERSION.get(kind)
    if known is None or schema_version > known:
        what = f"kind {kind!r}" if known is None else f"{kind} at schema version {schema_version}"
        newest = "" if known is None else f" (its newest is {known})"
        raise StoreError(
            f"the store holds an event of {what}, newer than this regwatch knows{newest};"
            " upgrade regwatch"
        )
    data = dict(payload)
    version = schema_version
    while version < SCHEMA_VERSION.get(kind, version):
        data = UPCASTERS[(kind, version)](data)
        version += 1
    return _ADAPTER.validate_python({**data, "kind": kind})

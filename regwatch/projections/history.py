"""A repository's tag history from its log: each tag event as a row, and each tag's digest at T.

Quay's tag history is the model: a tag points at a digest over an interval, from the event that
set it to the event that changed it. Everything here is a fold over one repository's stream,
so `regwatch history` answers from the log alone, and a notification's `data` is the same row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, NoReturn

from regwatch.errors import StoreError
from regwatch.rescan import is_full_version

if TYPE_CHECKING:
    from regwatch.store.records import StoredEvent

TAG_KINDS: Final = frozenset({"TagAppeared", "TagMoved", "TagDisappeared"})
"""The event kinds that are tag history: one `Movement` each."""

READS: Final = {"TagAppeared": 2, "TagMoved": 2, "TagDisappeared": 2, "ImageInspected": 1}
"""The schema versions of the payloads read here, as JSON: `regwatch history` must answer in a
fraction of a second, and the event models cost it pydantic (~0.2 s of start-up). Versions 1
lack only fields that default to null. `tests/unit/test_history.py` keeps these equal to
`events.SCHEMA_VERSION` and the reading equal to the models' decoding."""

ROW: Final = (
    "time",
    "kind",
    "repository",
    "tag",
    "digest",
    "previous_digest",
    "repush",
    "rollback",
    "platforms_added",
    "platforms_removed",
    "platform_changed",
)
"""A history row's fields, in the order every format shows them."""

_KINDS: Final = {"TagAppeared": "appeared", "TagMoved": "moved", "TagDisappeared": "disappeared"}


@dataclass(frozen=True)
class Movement:
    """One history row: one tag event of a repository's stream, with what it means."""

    position: int
    """The tag event's log position: stable, so a notification's id can be built on it."""
    version: int
    time: datetime
    kind: str
    """`appeared`, `moved` or `disappeared`."""
    repository: str
    tag: str
    digest: str
    """The new digest; for `disappeared` the last one."""
    previous_digest: str | None
    repush: bool
    """A full version (`1.21.5`, `1.21.5-alpine`) moved: a release was pushed again."""
    rollback: bool
    """The tag moved to a digest it pointed to before."""
    platforms_added: tuple[str, ...]
    platforms_removed: tuple[str, ...]
    platform_changed: bool | None

    def row(self) -> dict[str, Any]:
        """The fields of `ROW` in its order, as JSON values."""
        return {
            "time": iso_time(self.time),
            "kind": self.kind,
            "repository": self.repository,
            "tag": self.tag,
            "digest": self.digest,
            "previous_digest": self.previous_digest,
            "repush": self.repush,
            "rollback": self.rollback,
            "platforms_added": list(self.platforms_added),
            "platforms_removed": list(self.platforms_removed),
            "platform_changed": self.platform_changed,
        }


def iso_time(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`; fractions of a second only when there are some."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def movements(repository: str, stored: Iterable[StoredEvent]) -> list[Movement]:
    """A repository stream's events (version order) → one Movement per tag event.

    The platforms of a move come from the `ImageInspected` events of both digests, wherever
    they stand in the stream (a poll appends its inspections after its tag events).
    """
    tagged: list[tuple[StoredEvent, _Fact]] = []
    platforms: dict[str, tuple[str, ...]] = {}
    for event in stored:
        kind = event.kind
        if kind not in READS:
            continue
        if event.schema_version > READS[kind]:
            _refuse(event)
        payload = event.payload
        if kind in TAG_KINDS:
            tagged.append((event, _fact(kind, payload)))
        else:
            children = payload.get("platforms") or ()
            if children:
                platforms[payload["digest"]] = tuple(_platform(child) for child in children)
    pointed: dict[str, set[str]] = {}
    rows: list[Movement] = []
    for event, fact in tagged:
        seen = pointed.setdefault(fact.tag, set())
        rows.append(_movement(repository, event, fact, seen, platforms))
        if fact.kind != "disappeared":
            seen.add(fact.digest)
    return rows


@dataclass(frozen=True)
class _Fact:
    """A tag event's payload, whichever schema version wrote it."""

    kind: str
    tag: str
    digest: str
    previous: str | None
    platform: str | None
    platform_changed: bool | None


def _fact(kind: str, payload: Mapping[str, Any]) -> _Fact:
    platform = payload.get("platform")
    if kind == "TagMoved":
        return _Fact(
            "moved",
            payload["tag"],
            payload["new_digest"],
            payload["old_digest"],
            platform,
            payload.get("platform_changed"),
        )
    return _Fact(_KINDS[kind], payload["tag"], payload["digest"], None, platform, None)


def _refuse(event: StoredEvent) -> NoReturn:
    """A payload newer than this projection reads: the events module words the refusal."""
    from regwatch.events import from_payload  # noqa: PLC0415  # pydantic: only on this path

    from_payload(event.kind, event.schema_version, event.payload)
    raise StoreError(f"history cannot read {event.kind} at schema version {event.schema_version}")


def _movement(
    repository: str,
    event: StoredEvent,
    fact: _Fact,
    seen: set[str],
    platforms: Mapping[str, tuple[str, ...]],
) -> Movement:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    moved = fact.kind == "moved"
    if moved and fact.previous is not None:
        old, new = platforms.get(fact.previous), platforms.get(fact.digest)
        if old is not None and new is not None:
            added = tuple(sorted(set(new) - set(old)))
            removed = tuple(sorted(set(old) - set(new)))
        changed = fact.platform_changed
    else:
        changed = None if fact.platform is None else False
    return Movement(
        position=event.position,
        version=event.version,
        time=event.observed_at,
        kind=fact.kind,
        repository=repository,
        tag=fact.tag,
        digest=fact.digest,
        previous_digest=fact.previous,
        repush=moved and is_full_version(fact.tag),
        rollback=moved and fact.digest in seen,
        platforms_added=added,
        platforms_removed=removed,
        platform_changed=changed,
    )


def _platform(child: Mapping[str, Any]) -> str:
    parts = (child.get("os"), child.get("architecture"), child.get("variant"))
    return "/".join(part for part in parts if part)


@dataclass(frozen=True)
class Pointing:
    """A tag's digest over an interval: set at `since`, changed at `until` (None: still is)."""

    tag: str
    digest: str
    since: datetime
    until: datetime | None

    def row(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "digest": self.digest,
            "since": iso_time(self.since),
            "until": None if self.until is None else iso_time(self.until),
        }


def pointing_at(rows: Iterable[Movement], moment: datetime) -> dict[str, Pointing]:
    """Each tag present at `moment` (an event at that very instant has happened), by tag name.

    `since` is the event that made the tag point at its digest then, `until` the tag's next
    event after `moment` (a move or its disappearance).
    """
    current: dict[str, Pointing] = {}
    ended: dict[str, Pointing] = {}
    for movement in rows:
        tag = movement.tag
        if movement.time > moment:
            held = current.pop(tag, None)
            if held is not None:
                ended[tag] = Pointing(tag, held.digest, held.since, movement.time)
        elif movement.kind == "disappeared":
            current.pop(tag, None)
        else:
            current[tag] = Pointing(tag, movement.digest, movement.time, None)
    found = {**current, **ended}
    return {tag: found[tag] for tag in sorted(found)}


def absence(rows: Iterable[Movement], tag: str, moment: datetime) -> str:
    """Why `tag` has no digest at `moment`, in words: gone by then, not yet there, or unknown."""
    own = [movement for movement in rows if movement.tag == tag]
    before = [movement for movement in own if movement.time <= moment]
    if before:
        return f"it disappeared at {iso_time(before[-1].time)}"
    if own:
        return f"it first appeared at {iso_time(own[0].time)}"
    return "the store never saw it"

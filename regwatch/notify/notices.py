"""What a log event announces: a tag's movement, a watch's first poll, a watch that starts failing.

A `Notice` is one event as every sink type sees it; `Notices` reads the store for what an event
alone does not say (the history row of a tag event, the previous run of a failing watch, the
tags an initial poll recorded). A repository's rows are cached, a few streams at a time.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from regwatch.events import (
    RUN_STREAM_SUFFIX,
    PollFailed,
    PollSucceeded,
    from_payload,
)
from regwatch.projections.history import TAG_KINDS, Movement, iso_time, movements
from regwatch.store.eventstore import EventStore, StoredEvent

CACHED_STREAMS: Final = 32
"""Repositories whose history rows a follower keeps between pages."""


@dataclass(frozen=True)
class Notice:
    """One event a sink may be told of, with everything each sink type writes."""

    position: int
    type: str
    """The CloudEvent type: `io.regwatch.tag.moved`, `io.regwatch.watch.initial`, …"""
    kind: str
    """The most specific word (`repush`, else `rollback`, else the kind): `REGWATCH_KIND`."""
    words: frozenset[str]
    """Every word of `kinds` that lets it through (a re-pushed move is `moved` and `repush`)."""
    repository: str
    subject: str
    """The tag, or the watch's name for a watch event."""
    time: datetime
    data: dict[str, Any]
    watch: str | None = None
    """The watch of a watch event (`initial`, `failed`); None for a tag event."""
    digest: str = ""
    previous_digest: str = ""

    @property
    def id(self) -> str:
        """Stable for one log event, so a redelivery carries the same id."""
        return f"regwatch-{self.position}"

    @property
    def time_text(self) -> str:
        return iso_time(self.time)


@dataclass(frozen=True)
class Initial:
    """A watch's first successful poll: its notice, and the tag events it summarises."""

    notice: Notice
    stream: str
    versions: tuple[int, int] | None
    """The repository-stream versions a follower skips; None when the poll appended nothing."""


class Notices:
    """Reads what log events announce; one per follower (its cache is not shared)."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._rows: OrderedDict[str, tuple[list[StoredEvent], dict[int, Movement]]] = OrderedDict()

    def tag(self, event: StoredEvent) -> Notice | None:
        """The notice of a tag event; None for the stream's other events."""
        if event.kind not in TAG_KINDS:
            return None
        movement = self._movement(event)
        words = {movement.kind}
        if movement.repush:
            words.add("repush")
        if movement.rollback:
            words.add("rollback")
        kind = "repush" if movement.repush else "rollback" if movement.rollback else movement.kind
        return Notice(
            position=event.position,
            type=f"io.regwatch.tag.{movement.kind}",
            kind=kind,
            words=frozenset(words),
            repository=movement.repository,
            subject=movement.tag,
            time=movement.time,
            data=movement.row(),
            digest=movement.digest,
            previous_digest=movement.previous_digest or "",
        )

    def initial(self, event: StoredEvent) -> Initial | None:
        """A watch's first successful poll, from its `PollSucceeded`; else None."""
        if event.kind != "PollSucceeded" or not event.stream.endswith(RUN_STREAM_SUFFIX):
            return None
        run = from_payload(event.kind, event.schema_version, event.payload)
        if not isinstance(run, PollSucceeded) or not run.initial or run.watch is None:
            return None
        repository = event.stream.removesuffix(RUN_STREAM_SUFFIX)
        data = {"watch": run.watch, "repository": repository, "tags": self._tags(event, run)}
        notice = _watch_notice(event, "io.regwatch.watch.initial", "initial", run.watch, data)
        return Initial(notice, repository, run.tag_versions)

    def failed(self, event: StoredEvent) -> Notice | None:
        """A watch that starts failing (its previous run was no failure); else None."""
        if event.kind != "PollFailed" or not event.stream.endswith(RUN_STREAM_SUFFIX):
            return None
        run = from_payload(event.kind, event.schema_version, event.payload)
        if not isinstance(run, PollFailed) or run.watch is None:
            return None
        before = self._store.latest(event.stream, watch=run.watch, before_version=event.version)
        if before is not None and before.kind == "PollFailed":
            return None
        repository = event.stream.removesuffix(RUN_STREAM_SUFFIX)
        data = {"watch": run.watch, "repository": repository, "error": run.error}
        return _watch_notice(event, "io.regwatch.poll.failed", "failed", run.watch, data)

    def _tags(self, event: StoredEvent, run: PollSucceeded) -> int:
        """Tags the repository held once the poll was recorded."""
        stream = event.stream.removesuffix(RUN_STREAM_SUFFIX)
        # Without versions of its own, the poll saw what earlier writers appended: all of it.
        newest = run.tag_versions[1] if run.tag_versions else self._store.stream_version(stream)
        events, _ = self._stream(stream, newest)
        present: set[str] = set()
        for stored in events:
            recorded_before = stored.position < event.position
            if run.tag_versions is None and not recorded_before:
                break
            if run.tag_versions is not None and stored.version > run.tag_versions[1]:
                break
            if stored.kind == "TagAppeared":
                present.add(str(stored.payload.get("tag")))
            elif stored.kind == "TagDisappeared":
                present.discard(str(stored.payload.get("tag")))
        return len(present)

    def _movement(self, event: StoredEvent) -> Movement:
        _, rows = self._stream(event.stream, event.version)
        return rows[event.position]

    def _stream(self, stream: str, version: int) -> tuple[list[StoredEvent], dict[int, Movement]]:
        """The stream's events and rows by position, loaded at least to `version`."""
        cached = self._rows.get(stream)
        if cached is None:
            cached = ([], {})
        events, rows = cached
        known = events[-1].version if events else 0
        if known < version or not events:
            events = [*events, *self._store.load(stream, after_version=known)]
            rows = {row.position: row for row in movements(stream, events)}
        self._rows[stream] = (events, rows)
        self._rows.move_to_end(stream)
        while len(self._rows) > CACHED_STREAMS:
            self._rows.popitem(last=False)
        return events, rows


def _watch_notice(
    event: StoredEvent, type_: str, kind: str, watch: str, data: dict[str, Any]
) -> Notice:
    return Notice(
        position=event.position,
        type=type_,
        kind=kind,
        words=frozenset({kind}),
        repository=str(data["repository"]),
        subject=watch,
        time=event.observed_at,
        data=data,
        watch=watch,
    )

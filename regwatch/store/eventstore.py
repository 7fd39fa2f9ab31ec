"""The event store: append with an expected version, read a stream and its snapshot, read all,
checkpoints.

Optimistic concurrency is the unique key on (stream, version), not code: a writer that lost a
race fails to insert and gets `Conflict`. Writers also hold the store's write lock (see
`engine.write_transaction`), which turns most races into a clean pre-check and keeps positions
in commit order. SQLAlchemy's exceptions become `StoreError`s here, once, in `translated`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

from regwatch.errors import Conflict, StoreError
from regwatch.events import RUN_STREAM_SUFFIX
from regwatch.store.engine import shown, write_transaction
from regwatch.store.records import StoredEvent as StoredEvent
from regwatch.store.schema import blob_locations as blob_locations_table
from regwatch.store.schema import checkpoints as checkpoints_table
from regwatch.store.schema import events as events_table
from regwatch.store.schema import snapshots as snapshots_table


@dataclass(frozen=True)
class NewEvent:
    """An event about to be appended; the store gives it a stream, version and position."""

    kind: str
    payload: Mapping[str, Any]
    observed_at: datetime
    schema_version: int = 1

    def __post_init__(self) -> None:
        if self.observed_at.utcoffset() is None:
            raise ValueError(f"{self.kind}: observed_at must be timezone-aware")


@dataclass(frozen=True)
class Snapshot:
    """A stream's folded state as JSON, at the stream version it was folded to."""

    version: int
    schema_version: int
    state: Mapping[str, Any]


PAGE = 1000
"""Events `read_all` returns at most, unless asked for fewer or more."""

APPENDED_CHANNEL = "regwatch_appended"
"""The PostgreSQL `NOTIFY` channel every append transaction signals (`store/wakeups.py`)."""

_DIGEST_LENGTH = 160
"""The `blob_locations.digest` column's length; sha512 digests take 135 characters."""

_IN_BATCH = 500
"""Values one `IN (…)` list holds: far below every backend's limit on bound parameters."""

_BACKGROUND = re.compile(r"\s*\(Background on this error at: [^)]*\)")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class EventStore:
    """One database's event log; safe to share between threads (except in-memory SQLite)."""

    def __init__(self, engine: sa.Engine, clock: Callable[[], datetime] = _utc_now) -> None:
        self._engine = engine
        self._clock = clock

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    @contextmanager
    def transaction(self, action: str = "write to the store") -> Iterator[UnitOfWork]:
        """One write transaction that appends, checkpoint saves and a follower's own rows share.

        Commits when the block ends normally, rolls back when it raises; `action` names the
        work in a failure's one line. An append that lost a race raises `Conflict`.
        """
        unit: UnitOfWork | None = None

        def lost_race() -> Conflict:
            # A writer that does not take our lock won after the pre-check.
            stream, expected = unit.appending if unit and unit.appending else ("?", 0)
            return _conflict(stream, expected, self.stream_version(stream))

        with (
            translated(self._engine, action, on_conflict=lost_race),
            write_transaction(self._engine) as connection,
        ):
            unit = UnitOfWork(connection, as_utc(self._clock()))
            yield unit

    def append(
        self,
        stream: str,
        expected_version: int | None,
        events: Sequence[NewEvent],
        *,
        snapshot: Snapshot | None = None,
        runs: tuple[str, Sequence[NewEvent]] | None = None,
    ) -> list[StoredEvent]:
        """Append `events` as versions expected_version+1… of `stream`, in one transaction.

        `expected_version` is the version the caller decided on (0 for a new stream); when
        another writer got there first, nothing is written and `Conflict` is raised; None
        appends at the end, whatever the version (job runs, which nobody decides on). In the
        same transaction, `snapshot` (the state at the new version) replaces the stream's
        snapshot, and `runs` appends (stream, events) at the end of another stream, whatever
        its version, at positions before `events`. The stored events come back in position
        order: the runs, then `events`.
        """
        if not events and not (runs and runs[1]):
            return []
        with self.transaction(f"append to stream {stream}") as unit:
            return unit.append(stream, expected_version, events, snapshot=snapshot, runs=runs)

    def snapshot(self, stream: str) -> Snapshot | None:
        """The newest snapshot of `stream`; None when it has none."""
        query = sa.select(snapshots_table).where(snapshots_table.c.stream == stream)
        with (
            translated(self._engine, f"read the snapshot of stream {stream}"),
            self._engine.connect() as connection,
        ):
            row = connection.execute(query).mappings().one_or_none()
        if row is None:
            return None
        return Snapshot(row["version"], row["schema_version"], row["state"])

    def load(self, stream: str, after_version: int = 0) -> list[StoredEvent]:
        """The events of `stream` with a version above `after_version`, oldest first."""
        query = (
            sa.select(events_table)
            .where(events_table.c.stream == stream, events_table.c.version > after_version)
            .order_by(events_table.c.version)
        )
        return self._read(f"load stream {stream}", query)

    def latest(
        self,
        stream: str,
        kind: str | None = None,
        *,
        watch: str | None = None,
        before_version: int | None = None,
    ) -> StoredEvent | None:
        """The newest event of `stream`; None when there is none.

        Narrowed to `kind`, to runs whose payload names `watch`, and to versions below
        `before_version`, when given: "the previous run of this watch" is one query.
        """
        query = sa.select(events_table).where(events_table.c.stream == stream)
        if kind is not None:
            query = query.where(events_table.c.kind == kind)
        if watch is not None:
            query = query.where(_watch_of(events_table.c.payload) == watch)
        if before_version is not None:
            query = query.where(events_table.c.version < before_version)
        query = query.order_by(events_table.c.version.desc()).limit(1)
        found = self._read(f"read the newest event of stream {stream}", query)
        return found[0] if found else None

    def drop_runs(self, observed_before: datetime, passed: int | None = None) -> int:
        """Retention: delete job runs observed before the moment; how many went.

        Only run streams (`<repository>#runs`) are touched, never tag history, and each run
        stream keeps its newest run, so its versions keep counting up and `status` still knows
        the last poll of a watch that has been failing for longer than the retention; each
        watch keeps its newest success, so its next poll is not taken for its first. With
        `passed` (the lowest checkpoint of the notification sinks), runs at later positions
        stay too: a sink has yet to read them.
        """
        runs = events_table.c.stream.like(f"%{RUN_STREAM_SUFFIX}")
        newest = (
            sa.select(sa.func.max(events_table.c.position))
            .where(runs)
            .group_by(events_table.c.stream)
            .scalar_subquery()
        )
        watch = _watch_of(events_table.c.payload)
        newest_success = (
            sa.select(sa.func.max(events_table.c.position))
            .where(runs, events_table.c.kind == "PollSucceeded", watch.is_not(None))
            .group_by(events_table.c.stream, watch)
            .scalar_subquery()
        )
        statement = sa.delete(events_table).where(
            runs,
            events_table.c.observed_at < observed_before,
            events_table.c.position.not_in(newest),
            events_table.c.position.not_in(newest_success),
        )
        if passed is not None:
            statement = statement.where(events_table.c.position <= passed)
        with (
            translated(self._engine, "drop old job runs"),
            write_transaction(self._engine) as connection,
        ):
            return int(connection.execute(statement).rowcount or 0)

    def stream_version(self, stream: str) -> int:
        """The version of the newest event in `stream`; 0 when the stream has none."""
        with (
            translated(self._engine, f"read the version of stream {stream}"),
            self._engine.connect() as connection,
        ):
            return _stream_version(connection, stream)

    def read_all(self, after: int = 0, limit: int = PAGE) -> list[StoredEvent]:
        """At most `limit` events of every stream with a position above `after`, in order.

        A page, never the whole log: a follower asks again after the last position it got.
        Positions may have gaps (a rolled-back append can consume some), never reorderings.
        """
        if limit < 1:
            raise ValueError(f"read_all: limit must be positive, not {limit}")
        query = (
            sa.select(events_table)
            .where(events_table.c.position > after)
            .order_by(events_table.c.position)
            .limit(limit)
        )
        return self._read(f"read events after position {after}", query)

    def blob_locations(self, digests: Iterable[str]) -> dict[str, list[str]]:
        """For each of `digests`, the streams whose events placed that blob there.

        Answered from the `blob_locations` projection, which appends keep up to date, so the
        cost follows the digests asked about, never the length of the log.
        """
        wanted = sorted(set(digests))
        found: dict[str, list[str]] = {}
        with (
            translated(self._engine, "read where blobs live"),
            self._engine.connect() as connection,
        ):
            for start in range(0, len(wanted), _IN_BATCH):
                batch = wanted[start : start + _IN_BATCH]
                query = (
                    sa.select(blob_locations_table.c.digest, blob_locations_table.c.stream)
                    .where(blob_locations_table.c.digest.in_(batch))
                    .order_by(blob_locations_table.c.digest, blob_locations_table.c.stream)
                )
                for digest, stream in connection.execute(query):
                    found.setdefault(digest, []).append(stream)
        return found

    def checkpoint(self, name: str) -> int:
        """The position the follower `name` has processed; 0 when it never saved one."""
        query = sa.select(checkpoints_table.c.position).where(checkpoints_table.c.name == name)
        with (
            translated(self._engine, f"read checkpoint {name}"),
            self._engine.connect() as connection,
        ):
            position = connection.execute(query).scalar_one_or_none()
        return 0 if position is None else int(position)

    def start_checkpoint(self, name: str, position: int) -> int:
        """The checkpoint of `name`; one that was never saved is saved at `position` first.

        Where a new follower starts (a notification sink: the log's end), decided once: a
        later start finds the saved one, even when that is 0.
        """
        query = sa.select(checkpoints_table.c.position).where(checkpoints_table.c.name == name)
        with self.transaction(f"start checkpoint {name}") as unit:
            found = unit.connection.execute(query).scalar_one_or_none()
            if found is not None:
                return int(found)
            unit.connection.execute(
                checkpoints_table.insert().values(
                    name=name, position=position, updated_at=unit.recorded_at
                )
            )
            return position

    def last_position(self) -> int:
        """The position of the log's newest event; 0 when the log is empty."""
        query = sa.select(sa.func.coalesce(sa.func.max(events_table.c.position), 0))
        with (
            translated(self._engine, "read the end of the log"),
            self._engine.connect() as connection,
        ):
            return int(connection.execute(query).scalar_one())

    def count_after(self, position: int) -> int:
        """How many events lie after `position`: a follower's lag."""
        query = sa.select(sa.func.count()).where(events_table.c.position > position)
        with (
            translated(self._engine, f"count events after position {position}"),
            self._engine.connect() as connection,
        ):
            return int(connection.execute(query).scalar_one())

    def save_checkpoint(self, name: str, expected: int, position: int) -> None:
        """Move the follower `name` from `expected` to `position`, alone in a transaction.

        A follower that also writes rows of its own uses `transaction()` instead, so the rows
        and the checkpoint commit together.
        """
        with self.transaction(f"save checkpoint {name}") as unit:
            unit.save_checkpoint(name, expected, position)

    def close(self) -> None:
        """Release every pooled connection; an in-memory database is gone afterwards."""
        self._engine.dispose()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _read(self, action: str, query: sa.Select[Any]) -> list[StoredEvent]:
        with translated(self._engine, action), self._engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            StoredEvent(
                position=row["position"],
                stream=row["stream"],
                version=row["version"],
                kind=row["kind"],
                schema_version=row["schema_version"],
                payload=row["payload"],
                observed_at=as_utc(row["observed_at"]),
                recorded_at=as_utc(row["recorded_at"]),
            )
            for row in rows
        ]


class UnitOfWork:
    """The inside of one write transaction (see `EventStore.transaction`).

    `connection` is for the follower's own rows: whatever it writes there commits or rolls
    back with the appends and the checkpoint.
    """

    def __init__(self, connection: sa.Connection, recorded_at: datetime) -> None:
        self.connection = connection
        self.recorded_at = recorded_at
        """The transaction's time (the store's clock), for rows a follower writes."""
        self.appending: tuple[str, int] | None = None

    def append(
        self,
        stream: str,
        expected_version: int | None,
        events: Sequence[NewEvent],
        *,
        snapshot: Snapshot | None = None,
        runs: tuple[str, Sequence[NewEvent]] | None = None,
    ) -> list[StoredEvent]:
        """As `EventStore.append`, inside this transaction; `Conflict` rolls all of it back."""
        if not events and not (runs and runs[1]):
            return []
        found = _stream_version(self.connection, stream)
        if expected_version is not None and found != expected_version:
            raise _conflict(stream, expected_version, found)
        tag_rows = _rows(stream, found, events, self.recorded_at)
        # The runs first: a follower meets a poll's run (an initial poll's marker) before
        # the tag events it summarises.
        rows: list[dict[str, Any]] = []
        if runs and runs[1]:
            run_stream, run_events = runs
            at = _stream_version(self.connection, run_stream)
            rows = _rows(run_stream, at, run_events, self.recorded_at)
        rows += tag_rows
        self.appending = (stream, found)
        insert = events_table.insert().returning(
            events_table.c.position, sort_by_parameter_order=True
        )
        positions = self.connection.execute(insert, rows).scalars().all()
        self.appending = None
        if positions and self.connection.dialect.name == "postgresql":
            # Sent when this transaction commits: followers in other daemons wake at once.
            self.connection.execute(sa.text(f"NOTIFY {APPENDED_CHANNEL}"))
        _place_blobs(self.connection, stream, tag_rows)
        if snapshot is not None and events:
            _save_snapshot(self.connection, stream, snapshot)
        return [
            StoredEvent(position=position, **row)
            for position, row in zip(positions, rows, strict=True)
        ]

    def save_checkpoint(self, name: str, expected: int, position: int) -> None:
        """Compare-and-set: move `name` from `expected` (0: never saved) to `position`.

        When another follower moved it first, nothing changes and `Conflict` is raised, so two
        followers can never both advance one checkpoint.
        """
        values = {"position": position, "updated_at": self.recorded_at}
        updated = self.connection.execute(
            checkpoints_table.update()
            .where(checkpoints_table.c.name == name, checkpoints_table.c.position == expected)
            .values(values)
        )
        if updated.rowcount == 1:
            return
        current = self.connection.execute(
            sa.select(checkpoints_table.c.position).where(checkpoints_table.c.name == name)
        ).scalar_one_or_none()
        if current is None and expected == 0:
            # Every writer holds the store's write lock, so nobody inserts it between the two.
            self.connection.execute(checkpoints_table.insert().values(name=name, **values))
            return
        raise _checkpoint_conflict(name, expected, current)


def _place_blobs(connection: sa.Connection, stream: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Keep the `blob_locations` projection: a payload's `blobs` list lives in its stream.

    Only a shortcut for `out`: a value that is no digest the column can hold is left out.
    """
    digests = {
        digest
        for row in rows
        for digest in (row["payload"].get("blobs") or ())
        if isinstance(digest, str) and len(digest) <= _DIGEST_LENGTH
    }
    if not digests:
        return
    known = set(
        connection.execute(
            sa.select(blob_locations_table.c.digest).where(
                blob_locations_table.c.stream == stream,
                blob_locations_table.c.digest.in_(sorted(digests)),
            )
        ).scalars()
    )
    new = [{"digest": digest, "stream": stream} for digest in sorted(digests - known)]
    if new:
        connection.execute(blob_locations_table.insert(), new)


def _watch_of(payload: Any) -> Any:
    """A run payload's `watch`, as SQL text (JSON null and a missing key read as NULL)."""
    return payload["watch"].as_string()


def _checkpoint_conflict(name: str, expected: int, found: int | None) -> Conflict:
    where = "never saved" if found is None else f"at {found}"
    return Conflict(f"checkpoint {name}: expected position {expected}, found it {where}")


@contextmanager
def translated(
    engine: sa.Engine, action: str, on_conflict: Callable[[], Conflict] | None = None
) -> Iterator[None]:
    """Turn SQLAlchemy and driver errors into one-line `StoreError`s naming the database.

    `action` says what was being done; the URL is rendered without its password. A clash on
    (stream, version) raises what `on_conflict` returns, when given.
    """
    try:
        yield
    except exc.IntegrityError as err:
        if on_conflict is not None and _is_stream_version_violation(err):
            raise on_conflict() from err
        raise _store_error(engine, action, err) from err
    except exc.SQLAlchemyError as err:
        raise _store_error(engine, action, err) from err


def _rows(
    stream: str, after: int, events: Sequence[NewEvent], recorded_at: datetime
) -> list[dict[str, Any]]:
    return [
        {
            "stream": stream,
            "version": after + offset,
            "kind": event.kind,
            "schema_version": event.schema_version,
            # What a reader will get back: JSON types only (tuples become lists, no NaN).
            "payload": json.loads(json.dumps(event.payload, allow_nan=False)),
            "observed_at": as_utc(event.observed_at),
            "recorded_at": recorded_at,
        }
        for offset, event in enumerate(events, start=1)
    ]


def _save_snapshot(connection: sa.Connection, stream: str, snapshot: Snapshot) -> None:
    """Replace the stream's snapshot (under the write lock, so no one races us to it)."""
    connection.execute(snapshots_table.delete().where(snapshots_table.c.stream == stream))
    connection.execute(
        snapshots_table.insert().values(
            stream=stream,
            version=snapshot.version,
            schema_version=snapshot.schema_version,
            state=dict(snapshot.state),
        )
    )


def _stream_version(connection: sa.Connection, stream: str) -> int:
    query = sa.select(sa.func.coalesce(sa.func.max(events_table.c.version), 0)).where(
        events_table.c.stream == stream
    )
    return int(connection.execute(query).scalar_one())


def _conflict(stream: str, expected: int | None, found: int) -> Conflict:
    return Conflict(f"stream {stream}: expected version {expected}, found {found}")


def as_utc(moment: datetime) -> datetime:
    """Aware UTC; a naive value is UTC already (SQLite stores no offset)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _is_stream_version_violation(err: exc.IntegrityError) -> bool:
    # PostgreSQL names the constraint; SQLite names the columns.
    text = str(err.orig)
    return "uq_events_stream_version" in text or "events.stream, events.version" in text


def _store_error(engine: sa.Engine, action: str, err: exc.SQLAlchemyError) -> StoreError:
    where = shown(engine.url)
    return StoreError(f"{action} in {where}: {_reason(err)}")


def _reason(err: exc.SQLAlchemyError) -> str:
    """The driver's own words on one line (no SQL, no parameters), with advice where known."""
    text = str(err.orig) if isinstance(err, exc.StatementError) else _BACKGROUND.sub("", str(err))
    text = " ".join(text.split()) or type(err).__name__
    if "database is locked" in text or "database table is locked" in text:
        return f"{text}: another writer held the lock past the busy timeout"
    return text

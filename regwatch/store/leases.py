"""Leases: how the daemons of a fleet share watches and sinks through the store's database.

Coordination is what the database already guarantees: each decision is one conditional
`UPDATE` of one `leases` row, which PostgreSQL (row lock, re-check under READ COMMITTED) and
SQLite (`BEGIN IMMEDIATE`) let exactly one writer win. No daemon talks to another.

- **A watch's turn** (`watch:<name>`): a daemon whose timer fires takes the turn only when no
  one holds it and the last turn is at least one period old (less `slack`, for jitter), or
  when a holder let its hold lapse without ending its turn (it died polling). It holds the
  turn for a few seconds, renewed while the poll runs, and ends it when the poll ends.
- **A sink's follower** (`sink:<name>`): held by one daemon, renewed while it lives; another
  takes it once the hold lapses.
- **Membership** (`member:<daemon>`): each daemon renews its own row; those whose hold has not
  lapsed are the fleet, over which the daemons spread the watches (`frontends/fleet.py`).

Times come from the database's clock on PostgreSQL (daemons on several machines agree on one
clock), from this process's elsewhere (SQLite: one machine).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import exc

from regwatch.store.engine import write_transaction
from regwatch.store.eventstore import EventStore, as_utc, translated
from regwatch.store.schema import leases as leases_table

MEMBER = "member:"
"""The prefix of the rows that say which daemons are alive (`beat`)."""
FORGET_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class Turn:
    """Whether this daemon took a watch's turn; when not, until when another one holds it
    (None: the turn is simply not due yet)."""

    taken: bool
    held_until: datetime | None = None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Leases:
    """The leases of one daemon (`owner`) in one store."""

    def __init__(
        self, store: EventStore, owner: str, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        self._engine = store.engine
        self.owner = owner
        self._clock = clock

    def take_turn(self, name: str, *, period: timedelta, slack: timedelta, hold: timedelta) -> Turn:
        """Take the watch's turn if it is due and free (see the module)."""
        row = leases_table.c
        with self._writing("take a watch's turn") as connection:
            now = self._now(connection)
            _ensure(connection, name)
            free = sa.and_(
                row.held_until.is_(None),
                sa.or_(row.turn_at.is_(None), row.turn_at <= now - period + slack),
            )
            abandoned = sa.and_(row.held_until.is_not(None), row.held_until < now)
            taken = connection.execute(
                sa.update(leases_table)
                .where(row.name == name, sa.or_(free, abandoned))
                .values(owner=self.owner, held_until=now + hold, turn_at=now)
            ).rowcount
            if taken:
                return Turn(True)
            held = connection.execute(
                sa.select(row.held_until).where(row.name == name)
            ).scalar_one_or_none()
            return Turn(False, None if held is None else as_utc(held))

    def end_turn(self, name: str) -> None:
        """The poll ended: the turn is free again (its time stays, for the next one's due)."""
        row = leases_table.c
        with self._writing("end a watch's turn") as connection:
            connection.execute(
                sa.update(leases_table)
                .where(row.name == name, row.owner == self.owner)
                .values(held_until=None)
            )

    def renew(self, names: Collection[str], hold: timedelta) -> None:
        """Extend the holds this daemon still has among `names` (polls in flight)."""
        if not names:
            return
        row = leases_table.c
        with self._writing("renew leases") as connection:
            now = self._now(connection)
            connection.execute(
                sa.update(leases_table)
                .where(
                    row.name.in_(sorted(names)),
                    row.owner == self.owner,
                    row.held_until.is_not(None),
                )
                .values(held_until=now + hold)
            )

    def lead(self, name: str, hold: timedelta) -> bool:
        """Hold `name` (a sink's follower) for `hold` more, if it is ours or free; whether it is
        ours now."""
        row = leases_table.c
        with self._writing("hold a sink's lease") as connection:
            now = self._now(connection)
            _ensure(connection, name)
            return bool(
                connection.execute(
                    sa.update(leases_table)
                    .where(
                        row.name == name,
                        sa.or_(
                            row.owner == self.owner,
                            row.held_until.is_(None),
                            row.held_until < now,
                        ),
                    )
                    .values(owner=self.owner, held_until=now + hold)
                ).rowcount
            )

    def beat(self, hold: timedelta) -> list[str]:
        """Say this daemon is alive for `hold` more, and name every daemon alive now (its own
        name among them), sorted; rows of daemons dead for a day are dropped."""
        row = leases_table.c
        name = f"{MEMBER}{self.owner}"
        with self._writing("record this daemon as alive") as connection:
            now = self._now(connection)
            _ensure(connection, name)
            connection.execute(
                sa.update(leases_table)
                .where(row.name == name)
                .values(owner=self.owner, held_until=now + hold)
            )
            connection.execute(
                sa.delete(leases_table).where(
                    row.name.startswith(MEMBER), row.held_until < now - FORGET_AFTER
                )
            )
            alive = connection.execute(
                sa.select(row.owner).where(row.name.startswith(MEMBER), row.held_until > now)
            ).scalars()
            return sorted({owner for owner in alive if owner})

    def resign(self, names: Collection[str]) -> None:
        """Let go of what this daemon holds among `names`, so others need not wait out the hold."""
        if not names:
            return
        row = leases_table.c
        with self._writing("release leases") as connection:
            connection.execute(
                sa.update(leases_table)
                .where(row.name.in_(sorted(names)), row.owner == self.owner)
                .values(held_until=None)
            )

    @contextmanager
    def _writing(self, action: str) -> Iterator[sa.Connection]:
        """A short write transaction; it does not take the log's append lock."""
        engine = self._engine
        with translated(engine, action), write_transaction(engine, append_lock=False) as connection:
            yield connection

    def _now(self, connection: sa.Connection) -> datetime:
        if connection.dialect.name == "postgresql":
            stamp = connection.execute(sa.select(sa.func.clock_timestamp())).scalar_one()
            return stamp.astimezone(UTC)  # type: ignore[no-any-return]
        return self._clock().astimezone(UTC)


def _ensure(connection: sa.Connection, name: str) -> None:
    """The lease's row, created the first time anyone asks for it."""
    row = leases_table.c
    if connection.execute(sa.select(row.name).where(row.name == name)).first() is not None:
        return
    try:
        with connection.begin_nested():
            connection.execute(sa.insert(leases_table).values(name=name))
    except exc.IntegrityError:
        return  # another daemon created it between our look and our insert

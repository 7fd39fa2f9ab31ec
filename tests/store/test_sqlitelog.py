"""The stdlib reader of SQLite stores reads exactly what `EventStore` reads, and never writes;
`Service.history` answers the same on every persistent backend."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from regwatch.errors import StoreError
from regwatch.events import (
    Event,
    ImageInspected,
    PlatformImage,
    PollSucceeded,
    TagAppeared,
    TagMoved,
    run_stream,
)
from regwatch.projections.history import movements
from regwatch.refs import Repository
from regwatch.service import Service
from regwatch.service.recording import new_event
from regwatch.store.eventstore import EventStore
from regwatch.store.migrate import open_store
from regwatch.store.sqlitelog import SQLiteLog, sqlite_file

A, B, C = ("sha256:" + c * 64 for c in "abc")
REPO = Repository("127.0.0.1:5000", "team/app")
THEN = datetime(2026, 3, 1, 12, 30, 15, 250000, tzinfo=UTC)


def fill(store: EventStore) -> None:
    """Two polls of REPO: tags, an index inspected, runs beside them; another stream too."""
    stream = REPO.name
    first = [TagAppeared(tag="latest", digest=A, platform="linux/arm64")]
    store.append(
        stream,
        0,
        [new_event(e, THEN) for e in first],
        runs=(
            run_stream(stream),
            [new_event(PollSucceeded(requests=2, duration_seconds=0.1), THEN)],
        ),
    )
    later = THEN + timedelta(hours=1)
    second: list[Event] = [
        TagMoved(tag="latest", old_digest=A, new_digest=B, platform="linux/arm64"),
        ImageInspected(
            digest=B,
            media_type="application/vnd.oci.image.index.v1+json",
            size=10,
            platforms=(PlatformImage(os="linux", architecture="arm64", digest=C),),
        ),
    ]
    store.append(stream, 1, [new_event(e, later) for e in second])
    store.append("other/repo", 0, [new_event(TagAppeared(tag="x", digest=C), later)])


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:////var/lib/regwatch/store.db", "/var/lib/regwatch/store.db"),
        ("sqlite:///store.db", "store.db"),
        ("sqlite+pysqlite:////tmp/s.db", "/tmp/s.db"),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("sqlite:////tmp/s.db?timeout=5", None),
        ("sqlite:////tmp/with%20space.db", None),
        ("postgresql+psycopg://user:secret@db/regwatch", None),
    ],
)
def test_which_urls_the_stdlib_reader_takes(url: str, path: str | None) -> None:
    assert sqlite_file(url) == path


def test_it_reads_what_the_event_store_reads(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with open_store(f"sqlite:///{path}") as store:
        fill(store)
        expected = {
            (stream, after): store.load(stream, after)
            for stream in (REPO.name, run_stream(REPO.name), "other/repo", "never/seen")
            for after in (0, 1)
        }
    log = SQLiteLog.open(str(path))
    assert log is not None
    with log:
        found = {(stream, after): log.load(stream, after) for stream, after in expected}

    assert found == expected
    assert found[(REPO.name, 0)][0].observed_at == THEN


def test_a_missing_file_is_none_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"

    assert SQLiteLog.open(str(path)) is None
    assert not path.exists()


def test_a_database_without_regwatch_or_at_another_revision_is_left_to_the_store(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    older = tmp_path / "older.db"
    open_store(f"sqlite:///{older}").close()
    with sqlite3.connect(older) as db:
        db.execute("UPDATE alembic_version SET version_num = '0002_stream_snapshots'")
    before = older.read_bytes()

    assert SQLiteLog.open(str(empty)) is None
    assert SQLiteLog.open(str(older)) is None
    assert older.read_bytes() == before


def test_a_file_that_is_no_database_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are not the pages you are looking for\n" * 200)

    with pytest.raises(StoreError) as caught:
        SQLiteLog.open(str(path))

    assert str(caught.value) == (
        f"read the schema revision in sqlite:///{path}: file is not a database"
    )


def test_history_answers_the_same_on_every_backend(shared_url: str) -> None:
    with open_store(shared_url) as store:
        fill(store)
        expected = movements(REPO.name, store.load(REPO.name))

    with Service(store=shared_url) as service:
        found = service.history(REPO)

    assert found == expected
    assert [(m.kind, m.digest, m.platform_changed) for m in found] == [
        ("appeared", A, False),
        ("moved", B, None),
    ]


def test_history_of_a_store_at_another_revision_says_how_to_go_on(tmp_path: Path) -> None:
    path = tmp_path / "older.db"
    open_store(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE alembic_version SET version_num = '0002_stream_snapshots'")

    with Service(store=f"sqlite:///{path}") as service, pytest.raises(StoreError) as caught:
        service.history(REPO)

    assert "run `regwatch migrate --store sqlite:///" in str(caught.value)

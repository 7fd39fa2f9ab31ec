"""The event store's contract, on every backend in `store_url`."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from regwatch.errors import Conflict, StoreError
from regwatch.store import eventstore
from regwatch.store.engine import create_engine, write_transaction
from regwatch.store.eventstore import EventStore, NewEvent, StoredEvent
from regwatch.store.migrate import open_store, upgrade
from regwatch.store.schema import events
from tests.store.conftest import RECORDED_AT

OBSERVED = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))


def event(kind: str = "TagAppeared", **payload: object) -> NewEvent:
    return NewEvent(kind=kind, payload=payload or {"tag": "1.0"}, observed_at=OBSERVED)


def run_in_threads(count: int, work: Callable[[int], object]) -> list[object]:
    """Run `work(i)` in `count` threads released together; each result or exception, in order."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_append_and_load_round_trip_payload_and_times(store: EventStore) -> None:
    payload = {
        "tag": "1.2.3-alpine",
        "digest": "sha256:" + "ab" * 32,
        "platforms": [{"os": "linux", "architecture": "arm64", "variant": None}],
        "size": 2**40,
        "ratio": 0.25,
        "latest": True,
        "note": "ünïcode ✓",
    }
    new = NewEvent(kind="ImageInspected", payload=payload, observed_at=OBSERVED, schema_version=3)

    appended = store.append("index.docker.io/library/alpine", 0, [new])
    loaded = store.load("index.docker.io/library/alpine")

    assert loaded == appended
    [stored] = loaded
    assert stored.stream == "index.docker.io/library/alpine"
    assert (stored.version, stored.kind, stored.schema_version) == (1, "ImageInspected", 3)
    assert stored.payload == payload
    assert stored.observed_at == OBSERVED
    assert stored.observed_at.tzinfo is UTC
    assert stored.observed_at.microsecond == 678901
    assert stored.recorded_at == RECORDED_AT
    assert stored.recorded_at.tzinfo is UTC


def test_payload_comes_back_as_json_types(store: EventStore) -> None:
    [appended] = store.append("s", 0, [event(scope=("a", "b"))])

    assert appended.payload == {"scope": ["a", "b"]}
    assert store.load("s")[0].payload == {"scope": ["a", "b"]}


@pytest.mark.parametrize("payload", [{"ratio": float("nan")}, {"when": datetime.now(UTC)}])
def test_payload_must_be_plain_json(store: EventStore, payload: dict[str, object]) -> None:
    with pytest.raises((TypeError, ValueError)):
        store.append("s", 0, [NewEvent(kind="X", payload=payload, observed_at=OBSERVED)])
    assert store.stream_version("s") == 0


def test_observed_at_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        NewEvent(kind="TagAppeared", payload={}, observed_at=datetime(2024, 1, 1))


def test_versions_count_from_one_per_stream(store: EventStore) -> None:
    store.append("a", 0, [event(n=1), event(n=2)])
    store.append("b", 0, [event(n=1)])
    store.append("a", 2, [event(n=3), event(n=4), event(n=5)])

    assert [e.version for e in store.load("a")] == [1, 2, 3, 4, 5]
    assert [e.payload["n"] for e in store.load("a")] == [1, 2, 3, 4, 5]
    assert [e.version for e in store.load("a", after_version=3)] == [4, 5]
    assert store.load("a", after_version=5) == []
    assert (store.stream_version("a"), store.stream_version("b")) == (5, 1)


def test_unknown_stream_is_empty_at_version_zero(store: EventStore) -> None:
    assert store.load("nobody") == []
    assert store.stream_version("nobody") == 0


def test_appending_nothing_writes_nothing(store: EventStore) -> None:
    assert store.append("s", 0, []) == []
    assert store.stream_version("s") == 0
    assert store.read_all() == []


def test_second_append_at_the_same_version_conflicts_and_writes_nothing(
    store: EventStore,
) -> None:
    first = store.append("s", 0, [event(writer="first"), event(writer="first")])

    with pytest.raises(Conflict, match=r"^stream s: expected version 0, found 2$"):
        store.append("s", 0, [event(writer="second")])

    assert store.load("s") == first
    assert store.read_all() == first


@pytest.mark.parametrize("expected", [1, 3, -1])
def test_any_wrong_expected_version_conflicts(store: EventStore, expected: int) -> None:
    store.append("s", 0, [event(), event()])

    with pytest.raises(Conflict, match=f"expected version {expected}, found 2"):
        store.append("s", expected, [event()])
    assert store.stream_version("s") == 2


def test_unique_key_catches_a_writer_the_pre_check_missed(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock and pre-check are an optimisation: the (stream, version) key is the guard."""
    store.append("s", 0, [event(writer="first")])
    real = eventstore._stream_version
    stale = [0]  # the pre-check sees the stream as it was before the other writer appended

    def pre_check_misses_the_other_writer(connection: sa.Connection, stream: str) -> int:
        return stale.pop() if stale else real(connection, stream)

    monkeypatch.setattr(eventstore, "_stream_version", pre_check_misses_the_other_writer)

    with pytest.raises(Conflict, match=r"^stream s: expected version 0, found 1$") as caught:
        store.append("s", 0, [event(writer="second"), event(writer="second")])

    assert isinstance(caught.value.__cause__, sa.exc.IntegrityError)
    assert [e.payload["writer"] for e in store.load("s")] == ["first"]


def test_read_all_follows_positions_across_streams(store: EventStore) -> None:
    appended = [
        *store.append("a", 0, [event(n=1), event(n=2)]),
        *store.append("b", 0, [event(n=3)]),
        *store.append("a", 2, [event(n=4)]),
    ]
    positions = [e.position for e in appended]

    assert positions == sorted(positions)
    assert len(set(positions)) == 4
    assert store.read_all() == appended
    assert store.read_all(after=positions[0]) == appended[1:]
    assert store.read_all(limit=2) == appended[:2]
    assert store.read_all(after=positions[1], limit=1) == appended[2:3]
    assert store.read_all(after=positions[-1]) == []


def test_read_all_is_a_page_never_the_whole_log(store: EventStore) -> None:
    appended = [store.append(f"s{n}", 0, [event()])[0] for n in range(5)]

    assert store.read_all(limit=2) == appended[:2]
    assert store.read_all(after=appended[1].position, limit=2) == appended[2:4]
    with pytest.raises(ValueError, match="limit must be positive"):
        store.read_all(limit=0)


def test_read_all_without_a_limit_stops_at_one_page(store: EventStore) -> None:
    store.append("s", 0, [event(n=n) for n in range(eventstore.PAGE + 3)])

    first = store.read_all()
    rest = store.read_all(after=first[-1].position)

    assert len(first) == eventstore.PAGE
    assert [e.payload["n"] for e in rest] == [
        eventstore.PAGE,
        eventstore.PAGE + 1,
        eventstore.PAGE + 2,
    ]


def test_checkpoints_default_to_zero_and_move_by_compare_and_set(store: EventStore) -> None:
    assert store.checkpoint("notify") == 0

    store.save_checkpoint("notify", 0, 5)
    store.save_checkpoint("other", 0, 2)
    store.save_checkpoint("notify", 5, 9)

    assert (store.checkpoint("notify"), store.checkpoint("other")) == (9, 2)


@pytest.mark.parametrize(("expected", "found"), [(0, "at 5"), (4, "at 5"), (6, "at 5")])
def test_a_checkpoint_another_follower_moved_is_a_conflict(
    store: EventStore, expected: int, found: str
) -> None:
    store.save_checkpoint("notify", 0, 5)

    with pytest.raises(
        Conflict, match=f"^checkpoint notify: expected position {expected}, found it {found}$"
    ):
        store.save_checkpoint("notify", expected, 7)

    assert store.checkpoint("notify") == 5


def test_a_checkpoint_never_saved_is_a_conflict_unless_expected_at_zero(store: EventStore) -> None:
    with pytest.raises(Conflict, match="expected position 3, found it never saved"):
        store.save_checkpoint("notify", 3, 7)
    assert store.checkpoint("notify") == 0


def test_two_followers_cannot_both_advance_one_checkpoint(shared_url: str) -> None:
    with open_store(shared_url) as store:
        store.save_checkpoint("notify", 0, 1)

    def advance(index: int) -> object:
        with open_store(shared_url) as store:
            store.save_checkpoint("notify", 1, 10 + index)
            return index

    results = run_in_threads(4, advance)

    winners = [r for r in results if isinstance(r, int)]
    assert len(winners) == 1, results
    assert all(isinstance(r, Conflict) for r in results if r not in winners)
    with open_store(shared_url) as store:
        assert store.checkpoint("notify") == 10 + winners[0]


def test_a_unit_of_work_commits_rows_appends_and_checkpoint_together(store: EventStore) -> None:
    followed = store.append("s", 0, [event()])
    with store.engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE delivered (position INTEGER)"))

    with store.transaction("deliver") as unit:
        unit.connection.execute(
            sa.text("INSERT INTO delivered VALUES (:p)"), {"p": followed[0].position}
        )
        unit.append("receipts", 0, [event("Delivered")])
        unit.save_checkpoint("notify", 0, followed[0].position)

    assert store.checkpoint("notify") == followed[0].position
    assert [e.kind for e in store.load("receipts")] == ["Delivered"]
    with store.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT position FROM delivered")).scalars().all() == [
            followed[0].position
        ]


def test_a_unit_of_work_that_fails_leaves_nothing(store: EventStore) -> None:
    store.save_checkpoint("notify", 0, 1)
    with store.engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE delivered (position INTEGER)"))

    def deliver() -> None:
        with store.transaction("deliver") as unit:
            unit.connection.execute(sa.text("INSERT INTO delivered VALUES (1)"))
            unit.append("receipts", 0, [event("Delivered")])
            unit.save_checkpoint("notify", 0, 2)  # another follower moved it to 1

    with pytest.raises(Conflict):
        deliver()

    assert store.checkpoint("notify") == 1
    assert store.load("receipts") == []
    with store.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM delivered")).scalar_one() == 0


def test_blob_locations_follow_appends_of_payloads_with_blobs(store: EventStore) -> None:
    a, b, c = ("sha256:" + x * 64 for x in "abc")
    store.append("r/one", 0, [event("ImageInspected", digest=c, blobs=[a, b])])
    store.append("r/two", 0, [event("ImagePushed", digest=c, tags=["x"], blobs=[b])])
    store.append("r/two", 1, [event("ImagePushed", digest=c, tags=["y"], blobs=[b])])
    store.append("r/three", 0, [event("TagAppeared", tag="1", digest=c)])

    assert store.blob_locations([a, b, c, "sha256:unknown"]) == {
        a: ["r/one"],
        b: ["r/one", "r/two"],
    }
    assert store.blob_locations([]) == {}


def test_blob_values_that_are_no_digest_do_not_stop_an_append(store: EventStore) -> None:
    a = "sha256:" + "a" * 64
    blobs: list[object] = [a, "x" * 300, 5, None]

    store.append("r/one", 0, [event("ImagePushed", digest=a, tags=["x"], blobs=blobs)])

    assert store.load("r/one")[0].payload["blobs"] == blobs
    assert store.blob_locations([a, "x" * 300]) == {a: ["r/one"]}


def test_blob_locations_roll_back_with_a_lost_append(store: EventStore) -> None:
    a = "sha256:" + "a" * 64
    store.append("r/one", 0, [event()])

    with pytest.raises(Conflict):
        store.append("r/one", 0, [event("ImagePushed", digest=a, tags=["x"], blobs=[a])])

    assert store.blob_locations([a]) == {}


def test_blob_locations_do_not_read_the_log(store: EventStore) -> None:
    a = "sha256:" + "a" * 64
    store.append("r/one", 0, [event("ImagePushed", digest=a, tags=["x"], blobs=[a])])
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", seen)
    try:
        assert store.blob_locations([a]) == {a: ["r/one"]}
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", seen)

    assert statements
    assert not [s for s in statements if "events" in s], statements


def test_two_writers_racing_on_one_stream_one_wins(shared_url: str) -> None:
    with open_store(shared_url) as store:
        results = run_in_threads(
            2, lambda i: store.append("s", 0, [event(writer=i), event(writer=i)])
        )

        winners = [r for r in results if isinstance(r, list)]
        losers = [r for r in results if isinstance(r, Conflict)]
        assert (len(winners), len(losers)) == (1, 1), results
        assert str(losers[0]) == "stream s: expected version 0, found 2"
        loaded = store.load("s")
        assert loaded == winners[0]
        assert [e.version for e in loaded] == [1, 2]
        assert len({e.payload["writer"] for e in loaded}) == 1
        assert store.read_all() == loaded


def test_writers_on_separate_stores_and_streams_all_succeed(shared_url: str) -> None:
    """Each thread has its own engine, as separate processes would; the busy timeout queues them."""
    upgrade(shared_url)
    rounds = 10

    def write(index: int) -> int:
        with EventStore(create_engine(shared_url)) as store:
            for version in range(rounds):
                store.append(f"stream-{index}", version, [event(n=version)])
            return store.stream_version(f"stream-{index}")

    results = run_in_threads(4, write)

    assert results == [rounds] * 4
    with EventStore(create_engine(shared_url)) as store:
        everything = store.read_all()
        assert len(everything) == 4 * rounds
        positions = [e.position for e in everything]
        assert positions == sorted(set(positions))
        for index in range(4):
            assert [e.payload["n"] for e in store.load(f"stream-{index}")] == list(range(rounds))


def test_positions_become_visible_in_commit_order(shared_url: str) -> None:
    """A follower reading after its checkpoint must never see position n+1 before n commits."""
    with open_store(shared_url) as store:
        with write_transaction(store.engine) as slow:
            slow.execute(
                events.insert().values(
                    stream="slow",
                    version=1,
                    kind="TagAppeared",
                    schema_version=1,
                    payload={},
                    observed_at=OBSERVED,
                    recorded_at=RECORDED_AT,
                )
            )
            fast = threading.Thread(target=store.append, args=("fast", 0, [event()]))
            fast.start()
            fast.join(timeout=0.2)
            assert fast.is_alive(), "a second writer went ahead while the first held its position"
            assert store.read_all() == []
        # "slow" is committed now; only then could "fast" take a position, after it.
        fast.join(timeout=30)
        assert [e.stream for e in store.read_all()] == ["slow", "fast"]


def test_a_lock_held_past_the_busy_timeout_is_a_store_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    holder = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with (
            EventStore(create_engine(url, busy_timeout=0.1)) as store,
            pytest.raises(StoreError) as caught,
        ):
            store.append("s", 0, [event()])
        holder.execute("ROLLBACK")
    finally:
        holder.close()

    message = str(caught.value)
    assert message.startswith(f"append to stream s in {url}: database is locked")
    assert "busy timeout" in message
    assert "\n" not in message


def test_database_errors_become_one_line_store_errors(store: EventStore) -> None:
    with store.engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE events"))

    with pytest.raises(StoreError) as caught:
        store.load("s")

    message = str(caught.value)
    assert message.startswith("load stream s in ")
    assert "events" in message
    assert "\n" not in message
    assert "Background on this error" not in message
    assert isinstance(caught.value.__cause__, sa.exc.DBAPIError)


def test_unopenable_sqlite_file_is_a_store_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'store.db'}"

    with pytest.raises(StoreError) as caught:
        open_store(url)

    message = str(caught.value)
    assert url in message
    assert "unable to open database file" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:secret@127.0.0.1:1/x",
        "postgresql+psycopg://u:secret@127.0.0.1:1/x",
        "nosuchdialect://u:secret@host/x",
    ],
)
def test_unreachable_database_error_hides_the_password(url: str) -> None:
    """Unreachable with a driver installed, a missing driver without: a StoreError either way."""
    with pytest.raises(StoreError) as caught:
        open_store(url)

    message = str(caught.value)
    assert "secret" not in message
    assert "u:***@" in message
    assert "\n" not in message


def test_an_invalid_url_is_a_store_error_without_echoing_it() -> None:
    with pytest.raises(StoreError, match="not a valid SQLAlchemy URL") as caught:
        open_store("::secret::")
    assert "secret" not in str(caught.value)


def test_stored_events_are_frozen(store: EventStore) -> None:
    [stored] = store.append("s", 0, [event()])
    assert isinstance(stored, StoredEvent)
    with pytest.raises(AttributeError):
        stored.version = 2  # type: ignore[misc]

"""Many `regwatch` steps sharing one store at once, as parallel Concourse jobs do.

A step that loses a race for the log re-reads it, decides again and appends again; the log
never holds a fact twice; a step whose real work (a download, a push) succeeded never fails
because recording it did not.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from regwatch.refs import Reference, Repository
from regwatch.store.migrate import open_store
from tests import images
from tests.e2e.steps import Run, client_for, source_for, step
from tests.registries import RegistryServer
from tests.store.conftest import PERSISTENT, backend_url

PARALLEL = 5
"""Steps at once: more than the two cores, so they really contend for the store."""


def in_parallel(count: int, name: str, request: Mapping[str, Any], where: Path | None) -> list[Run]:
    """`count` steps started together; each `in`/`out` gets a directory of its own."""

    def one(index: int) -> Run:
        return step(name, request, where / str(index) if where else None)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


@pytest.fixture(params=PERSISTENT)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store every step of a test shares: a SQLite file, or a PostgreSQL database."""
    return backend_url(request, tmp_path)


def logged(url: str) -> list[tuple[str, dict[str, Any]]]:
    with open_store(url) as store:
        return [(stored.kind, stored.payload) for stored in store.read_all()]


def facts(url: str) -> Counter[tuple[str, str]]:
    """Every fact the log holds, counted: a tag appearing or moving, an image inspected."""
    counted: Counter[tuple[str, str]] = Counter()
    for kind, payload in logged(url):
        if kind in ("TagAppeared", "TagMoved", "TagDisappeared"):
            counted[(kind, payload["tag"])] += 1
        elif kind == "ImageInspected":
            counted[(kind, payload["digest"])] += 1
    return counted


def seeded(server: RegistryServer, tags: Mapping[str, images.Image]) -> str:
    repo = Repository(server.host, f"parallel/{uuid.uuid4().hex[:10]}")
    client = client_for(server)
    for tag, item in tags.items():
        images.push(client, repo, tag, item)
    return str(repo)


def all_succeeded(runs: list[Run]) -> None:
    failed = [run.stderr for run in runs if run.code != 0]
    assert not failed, failed


ONE = images.image("parallel-1", created="2024-01-01T00:00:00Z")
TWO = images.image("parallel-2", created="2024-02-01T00:00:00Z")
THREE = images.image("parallel-3", created="2024-03-01T00:00:00Z")


@pytest.mark.parametrize(
    ("rules", "answer"),
    [
        ({}, ["1.0.0", "1.1.0", "2.0.0"]),
        ({"tag_regex": "^build-", "created_at_sort": True}, ["build-1", "build-2"]),
        ({"tag": "latest"}, ["latest"]),
    ],
    ids=["semver", "regex-created-at", "tag"],
)
def test_parallel_checks_on_one_store_agree_and_record_each_fact_once(
    plain_registry: RegistryServer, store_url: str, rules: dict[str, Any], answer: list[str]
) -> None:
    tags = {
        "1.0.0": ONE,
        "1.1.0": TWO,
        "2.0.0": THREE,
        "latest": THREE,
        "build-1": ONE,
        "build-2": TWO,
    }
    repo = seeded(plain_registry, tags)
    source = source_for(plain_registry, repo, store=store_url, **rules)

    runs = in_parallel(PARALLEL, "check", {"source": source}, None)

    all_succeeded(runs)
    assert [version["tag"] for version in runs[0].answer] == answer
    assert all(run.answer == runs[0].answer for run in runs)
    counted = facts(store_url)
    assert counted, "the checks recorded nothing"
    assert set(counted.values()) == {1}, counted
    polls = [kind for kind, _ in logged(store_url) if kind == "PollSucceeded"]
    assert len(polls) == PARALLEL


def test_parallel_checks_record_a_moved_tag_once(
    plain_registry: RegistryServer, store_url: str
) -> None:
    repo = seeded(plain_registry, {"1.0.0": ONE, "latest": ONE})
    source = source_for(plain_registry, repo, store=store_url)
    assert step("check", {"source": source}).code == 0
    seeded_repo = Repository(plain_registry.host, repo.split("/", 1)[1])
    images.push(client_for(plain_registry), seeded_repo, "1.1.0", TWO)
    images.push(client_for(plain_registry), seeded_repo, "latest", TWO)

    runs = in_parallel(PARALLEL, "check", {"source": source}, None)

    all_succeeded(runs)
    assert all(run.answer[-1] == {"tag": "1.1.0", "digest": TWO.digest} for run in runs)
    assert facts(store_url) == {
        ("TagAppeared", "1.0.0"): 1,
        ("TagAppeared", "latest"): 1,
        ("TagAppeared", "1.1.0"): 1,
        ("TagMoved", "latest"): 1,
        # the move's old and new manifests, described once for the history
        ("ImageInspected", ONE.digest): 1,
        ("ImageInspected", TWO.digest): 1,
    }


@pytest.mark.parametrize("fmt", ["oci", "rootfs"])
def test_parallel_ins_with_one_store_all_succeed_and_inspect_once(
    plain_registry: RegistryServer, store_url: str, tmp_path: Path, fmt: str
) -> None:
    repo = seeded(plain_registry, {"v1": ONE})
    request = {
        "source": source_for(plain_registry, repo, store=store_url),
        "params": {"format": fmt},
        "version": {"tag": "v1", "digest": ONE.digest},
    }

    runs = in_parallel(PARALLEL, "in", request, tmp_path / "dest")

    all_succeeded(runs)
    written = "image.tar" if fmt == "oci" else "rootfs/etc/name"
    assert all((tmp_path / "dest" / str(i) / written).exists() for i in range(PARALLEL))
    assert facts(store_url) == {("ImageInspected", ONE.digest): 1}


@contextmanager
def write_lock_held(database: Path, seconds: float) -> Iterator[None]:
    """Another process's writer, holding SQLite's write lock for `seconds`."""
    ready = threading.Event()

    def hold() -> None:
        with sqlite3.connect(database, isolation_level=None) as db:
            db.execute("BEGIN IMMEDIATE")
            ready.set()
            time.sleep(seconds)
            db.execute("COMMIT")

    holder = threading.Thread(target=hold)
    holder.start()
    ready.wait(10)
    try:
        yield
    finally:
        holder.join()


@pytest.mark.parametrize("name", ["check", "in"])
def test_a_locked_sqlite_store_is_waited_for(
    plain_registry: RegistryServer, tmp_path: Path, name: str
) -> None:
    repo = seeded(plain_registry, {"1.0.0": ONE})
    database = tmp_path / "busy.db"
    source = source_for(plain_registry, repo, store=f"sqlite:///{database}")
    assert step("check", {"source": source}).code == 0  # the store exists, in WAL mode
    request = {"source": source, "version": {"tag": "1.0.0", "digest": ONE.digest}}

    started = time.monotonic()
    with write_lock_held(database, 3.0):
        run = step(name, request, tmp_path / "dest" if name == "in" else None)

    assert run.code == 0, run.stderr
    assert time.monotonic() - started >= 3.0
    assert "WARNING" not in run.stderr
    assert facts(source["store"])[("ImageInspected", ONE.digest)] == (1 if name == "in" else 0)


def broken_store(tmp_path: Path) -> str:
    """A store URL whose file is not a database: opening it fails, as a lost disk would."""
    database = tmp_path / "broken.db"
    database.write_bytes(b"this is not a database\n" * 100)
    return f"sqlite:///{database}"


def test_in_whose_download_succeeded_does_not_fail_on_the_store(
    plain_registry: RegistryServer, tmp_path: Path
) -> None:
    repo = seeded(plain_registry, {"v1": ONE})
    request = {
        "source": source_for(plain_registry, repo, store=broken_store(tmp_path)),
        "params": {"format": "oci"},
        "version": {"tag": "v1", "digest": ONE.digest},
    }
    run = step("in", request, tmp_path / "dest")

    assert run.code == 0, run.stderr
    assert run.answer["version"] == {"tag": "v1", "digest": ONE.digest}
    assert (tmp_path / "dest/image.tar").stat().st_size > 0
    warnings = [line for line in run.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1, run.stderr
    assert "recording" in warnings[0]
    assert "file is not a database" in warnings[0]
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    "params",
    [{"version": "1.0.0"}, {"version": "1.0.0", "bump_aliases": True}],
    ids=["plain", "bump-aliases"],
)
def test_out_whose_push_succeeded_does_not_fail_on_the_store(
    plain_registry: RegistryServer, tmp_path: Path, params: dict[str, Any]
) -> None:
    images.write_oci_layout(tmp_path / "src/img", "v", ONE)
    target = f"{plain_registry.host}/parallel/{uuid.uuid4().hex[:10]}"
    request = {
        "source": source_for(plain_registry, target, store=broken_store(tmp_path)),
        "params": {"image": "img", **params},
    }
    run = step("out", request, tmp_path / "src")

    assert run.code == 0, run.stderr
    assert run.answer["version"]["tag"] == "1.0.0"
    assert "Traceback" not in run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith("WARNING")]
    assert warnings, run.stderr
    assert all("file is not a database" in line for line in warnings), warnings
    pushed = client_for(plain_registry).resolve(
        Reference(Repository(plain_registry.host, target.split("/", 1)[1]), tag="1.0.0")
    )
    assert pushed is not None
    assert pushed.digest == run.answer["version"]["digest"]


def test_check_on_a_broken_store_fails_in_one_line(
    plain_registry: RegistryServer, tmp_path: Path
) -> None:
    repo = seeded(plain_registry, {"1.0.0": ONE})
    run = step("check", {"source": source_for(plain_registry, repo, store=broken_store(tmp_path))})
    assert run.code == 1
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, run.stderr
    assert "file is not a database" in errors[0]

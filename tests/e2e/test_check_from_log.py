"""Many Concourse checks, one observation (issue 16): `source.max_age` through the real CLI.

Every check here reaches the registry only through a `Forwarder` that counts the connections
it accepts, so "zero registry requests" is measured as the fleet decision words it: no
connection at all, not even a TLS handshake or a ping. Once the forwarder is stopped nothing
listens on the port the source names, and a check answered from the log still answers.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from regwatch.refs import Repository
from tests import images
from tests.e2e.steps import Run, assert_fails, client_for, step
from tests.e2e.test_watch import regwatch
from tests.forwarder import Forwarder
from tests.registries import RegistryServer

ONE = images.image("log-1", created="2024-03-01T00:00:00Z")
TWO = images.image("log-2", created="2024-01-01T00:00:00Z")
THREE = images.image("log-3", created="2024-02-01T00:00:00Z")
TAGS = {
    "1.0.0": ONE,
    "1.1.0": TWO,
    "1.1": TWO,
    "2.0.0": THREE,
    "2.1.0-rc.1": ONE,
    "latest": THREE,
    "nightly": ONE,
}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def forwarder(plain_registry: RegistryServer) -> Iterator[Forwarder]:
    forwarding = Forwarder(int(plain_registry.host.rpartition(":")[2])).start()
    yield forwarding
    forwarding.stop()


@pytest.fixture
def name(plain_registry: RegistryServer) -> str:
    """A fresh repository on the registry, holding `TAGS`."""
    repository = Repository(plain_registry.host, f"logcheck/{uuid.uuid4().hex[:10]}")
    client = client_for(plain_registry)
    for tag, item in TAGS.items():
        images.push(client, repository, tag, item)
    return repository.path


def check(forwarder: Forwarder, name: str, cursor: Any = None, **source: Any) -> Run:
    request: dict[str, Any] = {"source": {"repository": f"{forwarder.host}/{name}", **source}}
    if cursor is not None:
        request["version"] = cursor
    return step("check", request)


def answered(run: Run) -> Any:
    assert run.code == 0, run.stderr
    return run.answer


def test_a_fresh_observation_answers_with_no_connection_even_with_the_registry_gone(
    forwarder: Forwarder, name: str, store: str
) -> None:
    first = answered(check(forwarder, name, store=store, max_age="10m"))
    assert forwarder.take_count() > 0, "the first check found nothing in the log: it polled"

    again = check(forwarder, name, store=store, max_age="10m", debug=True)
    assert answered(again) == first
    assert forwarder.take_count() == 0
    assert "answered from the poll of" in again.stderr

    forwarder.stop()
    from_oldest = check(
        forwarder, name, {"tag": "1.0.0", "digest": ONE.digest}, store=store, max_age="10m"
    )
    assert answered(from_oldest) == first
    gone = check(forwarder, name, store=store)
    assert_fails(gone, f"checking origin {forwarder.host}/{name} failed")


SOURCES = [
    pytest.param({}, None, id="semver"),
    pytest.param({}, {"tag": "1.1.0", "digest": TWO.digest}, id="semver-cursor"),
    pytest.param({"pre_releases": True}, {"tag": "2.0.0", "digest": THREE.digest}, id="prerelease"),
    pytest.param({"variant": "", "semver_constraint": "~1.1"}, None, id="constraint"),
    pytest.param({"tag_regex": "^[0-9]"}, {"tag": "1.1", "digest": TWO.digest}, id="regex"),
    pytest.param({"tag_regex": "\\.0$", "created_at_sort": True}, None, id="created-at-sort"),
    pytest.param({"tag": "latest"}, {"tag": "latest", "digest": THREE.digest}, id="tag"),
    pytest.param({"tag": "latest"}, {"tag": "latest", "digest": ONE.digest}, id="tag-moved"),
    pytest.param(
        {"tag": "latest"}, {"tag": "latest", "digest": "sha256:" + "e" * 64}, id="tag-gone"
    ),
]


@pytest.mark.parametrize(("source", "cursor"), SOURCES)
def test_an_answer_from_the_log_is_the_answer_of_a_poll(
    forwarder: Forwarder, name: str, tmp_path: Path, source: dict[str, Any], cursor: Any
) -> None:
    store = f"sqlite:///{tmp_path / 'fleet.db'}"
    polled = answered(check(forwarder, name, cursor, store=store, **source))
    assert forwarder.take_count() > 0

    logged = check(forwarder, name, cursor, store=store, max_age="5m", debug=True, **source)

    assert answered(logged) == polled
    assert polled, "every case answers something"
    assert forwarder.take_count() == 0, logged.stderr


def runs(database: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(database) as db:
        found = db.execute(
            "SELECT payload FROM events WHERE kind = 'PollSucceeded' ORDER BY position"
        ).fetchall()
    return [json.loads(payload) for (payload,) in found]


def test_a_stale_observation_polls_and_records_so_the_next_check_benefits(
    forwarder: Forwarder, name: str, tmp_path: Path
) -> None:
    database = tmp_path / "fleet.db"
    store = f"sqlite:///{database}"
    first = answered(check(forwarder, name, store=store, max_age="1s"))
    forwarder.take_count()
    time.sleep(1.2)

    stale = check(forwarder, name, store=store, max_age="1s", debug=True)
    assert answered(stale) == first
    assert forwarder.take_count() > 0
    assert "the newest successful poll is" in stale.stderr
    assert len(runs(database)) == 2

    fresh = check(forwarder, name, store=store, max_age="1m")
    assert answered(fresh) == first
    assert forwarder.take_count() == 0
    assert len(runs(database)) == 2, "a check answered from the log records nothing"


def test_a_check_the_newest_poll_did_not_cover_polls(
    forwarder: Forwarder, name: str, tmp_path: Path
) -> None:
    """A tag-mode poll lists nothing: a semver check cannot be answered from it."""
    store = f"sqlite:///{tmp_path / 'fleet.db'}"
    answered(check(forwarder, name, store=store, tag="latest"))
    forwarder.take_count()

    semver = check(forwarder, name, store=store, max_age="10m", debug=True)

    assert [v["tag"] for v in answered(semver)] == ["1.0.0", "1.1.0", "2.0.0"]
    assert forwarder.take_count() > 0
    assert "does not cover this check: the poll made no listing" in semver.stderr


def test_the_daemons_poll_answers_a_check(forwarder: Forwarder, name: str, tmp_path: Path) -> None:
    """The fleet's economical poll resolves `latest` every time, so it covers a check of it."""
    store = f"sqlite:///{tmp_path / 'fleet.db'}"
    config = tmp_path / "regwatch.yaml"
    watch = {"name": "app", "every": "1m", "source": {"repository": f"{forwarder.host}/{name}"}}
    config.write_text(yaml.safe_dump({"store": store, "watches": [watch]}))
    done = regwatch("watch", "--config", str(config), "--once")
    assert done.returncode == 0, done.stderr
    forwarder.take_count()

    run = check(forwarder, name, store=store, max_age="10m", tag="latest")

    assert answered(run) == [{"tag": "latest", "digest": THREE.digest}]
    assert forwarder.take_count() == 0

"""What `check` writes to a persistent store: each repository's own facts, runs beside them.

A mirror applies to Docker Hub images only, so the origin here is a real local registry that
answers for Docker Hub: `HTTP_PROXY` points at it (a registry serves an absolute-form request
line by its path), `insecure` lets Docker Hub fall back to plain HTTP once the HTTPS attempt is
refused (`HTTPS_PROXY` on a closed port), and `NO_PROXY` keeps the mirror, another local
registry, reached directly.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from regwatch.net import Transport
from regwatch.refs import Repository
from regwatch.registry.client import RegistryClient
from regwatch.registry.credentials import StaticCredentials
from tests import images
from tests.e2e.steps import assert_fails, client_for, source_for, step
from tests.processes import free_port
from tests.registries import RegistryServer

HUB = "index.docker.io"


def rows(database: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """(stream, kind, payload) of every event, in position order."""
    with sqlite3.connect(database) as db:
        found = db.execute("SELECT stream, kind, payload FROM events ORDER BY position")
        return [(stream, kind, json.loads(payload)) for stream, kind, payload in found]


def tag_facts(database: Path, stream: str) -> list[tuple[str, str]]:
    """(kind, tag) of the tag events in `stream`."""
    return [(k, p["tag"]) for s, k, p in rows(database) if s == stream and k.startswith("Tag")]


@pytest.fixture
def hub_is(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make `server` answer for Docker Hub in the steps this test spawns."""

    def route(server: RegistryServer) -> None:
        monkeypatch.setenv("HTTP_PROXY", f"http://{server.host}")
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")

    return route


def mirror_of(server: RegistryServer) -> dict[str, Any]:
    return {"host": server.host, "username": server.username, "password": server.password}


def push(server: RegistryServer, path: str, tags: dict[str, images.Image]) -> None:
    client = client_for(server)
    for tag, item in tags.items():
        images.push(client, Repository(server.host, path), tag, item)


def tls_client(server: RegistryServer) -> RegistryClient:
    credentials = StaticCredentials(server.username or "", server.password or "")
    return RegistryClient(server.host, Transport(ca_certs=[server.ca_pem or ""]), credentials)


def test_a_mirror_lacking_the_tag_never_makes_it_flap_in_the_origin(
    plain_registry: RegistryServer, tls_registry: RegistryServer, hub_is: Any, tmp_path: Path
) -> None:
    name = f"flap-{uuid.uuid4().hex[:8]}"
    item = images.image("flap")
    push(plain_registry, f"library/{name}", {"3.20": item, "3.19": item})
    push(tls_registry, f"library/{name}", {"3.19": item})  # the mirror lacks 3.20
    hub_is(plain_registry)
    database = tmp_path / "trail.db"
    source = {
        "repository": name,
        "tag": "3.20",
        "insecure": True,
        "ca_certs": [tls_registry.ca_pem],
        "registry_mirror": mirror_of(tls_registry),
        "store": f"sqlite:///{database}",
    }

    answers = [step("check", {"source": source}) for _ in range(3)]

    assert [run.answer for run in answers] == [[{"tag": "3.20", "digest": item.digest}]] * 3
    assert "checking mirror" in answers[0].stderr  # tag not found there: the origin answered
    assert tag_facts(database, f"{HUB}/library/{name}") == [("TagAppeared", "3.20")]
    assert not [kind for _, kind, _ in rows(database) if kind == "TagDisappeared"]


def test_a_stale_mirror_does_not_record_the_origins_tags_as_gone(
    plain_registry: RegistryServer, tls_registry: RegistryServer, hub_is: Any, tmp_path: Path
) -> None:
    name = f"stale-{uuid.uuid4().hex[:8]}"
    one, two = images.image("stale-1"), images.image("stale-2")
    push(plain_registry, f"library/{name}", {"1.0.0": one, "2.0.0": two})
    images.push(
        tls_client(tls_registry), Repository(tls_registry.host, f"library/{name}"), "1.0.0", one
    )
    hub_is(plain_registry)
    database = tmp_path / "trail.db"
    origin_only = {"repository": name, "insecure": True, "store": f"sqlite:///{database}"}
    assert step("check", {"source": origin_only}).code == 0
    mirrored = {
        **origin_only,
        "ca_certs": [tls_registry.ca_pem],
        "registry_mirror": mirror_of(tls_registry),
    }

    run = step("check", {"source": mirrored})

    assert run.answer == [{"tag": "1.0.0", "digest": one.digest}]  # what the mirror knows
    origin = f"{HUB}/library/{name}"
    assert sorted(tag_facts(database, origin)) == [
        ("TagAppeared", "1.0.0"),
        ("TagAppeared", "2.0.0"),
    ]
    mirror = f"{tls_registry.host}/library/{name}"
    assert tag_facts(database, mirror) == [("TagAppeared", "1.0.0")]
    assert not [kind for _, kind, _ in rows(database) if kind == "TagDisappeared"]


def test_job_runs_live_in_their_own_stream_beside_the_tags(
    plain_registry: RegistryServer, tmp_path: Path
) -> None:
    repo = f"{plain_registry.host}/runs/{uuid.uuid4().hex[:8]}"
    item = images.image("runs")
    push(plain_registry, repo.split("/", 1)[1], {"1.0.0": item})
    database = tmp_path / "trail.db"
    source = source_for(plain_registry, repo, store=f"sqlite:///{database}")

    assert step("check", {"source": source}).code == 0
    assert step("check", {"source": source}).code == 0

    by_stream = [(stream, kind) for stream, kind, _ in rows(database)]
    assert by_stream == [
        (f"{repo}#runs", "PollSucceeded"),  # a poll's run comes before its tag events
        (repo, "TagAppeared"),
        (f"{repo}#runs", "PollSucceeded"),
    ]


def test_a_failed_poll_is_a_run_carrying_the_users_error_line(
    tls_registry: RegistryServer, tmp_path: Path
) -> None:
    repo = f"{tls_registry.host}/runs/{uuid.uuid4().hex[:8]}"
    push(tls_registry, repo.split("/", 1)[1], {"1.0.0": images.image("failed")})
    database = tmp_path / "trail.db"
    password = "wrong-" + uuid.uuid4().hex
    source = {
        **source_for(tls_registry, repo, store=f"sqlite:///{database}"),
        "password": password,
    }

    run = step("check", {"source": source})

    assert_fails(run, "401")
    [(stream, kind, payload)] = rows(database)
    assert (stream, kind) == (f"{repo}#runs", "PollFailed")
    assert f"error: {payload['error']}" in run.stderr.splitlines()
    assert payload["requests"] >= 1
    assert password not in json.dumps(payload)

"""`regwatch check` as Concourse runs it: JSON on stdin, against the real local registries."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from regwatch.net import Transport
from regwatch.refs import Repository
from regwatch.registry.client import RegistryClient
from regwatch.registry.credentials import StaticCredentials
from tests import images
from tests.e2e.steps import Run, assert_fails, client_for, source_for, step
from tests.registries import RegistryServer


def check(request: Mapping[str, Any] | str) -> Run:
    return step("check", request)


def seed(server: RegistryServer, tags: Mapping[str, images.Image | images.Index]) -> str:
    client = client_for(server)
    repo = Repository(server.host, f"check/{uuid.uuid4().hex[:10]}")
    for tag, item in tags.items():
        images.push(client, repo, tag, item)
    return str(repo)


@pytest.fixture(params=["plain", "tls", "token"])
def server(request: pytest.FixtureRequest) -> RegistryServer:
    registry: RegistryServer = request.getfixturevalue(f"{request.param}_registry")
    return registry


def test_semver_check_with_cursor(server: RegistryServer) -> None:
    one, two, three = images.image("s1"), images.image("s2"), images.image("s3")
    repo = seed(server, {"1.0.0": one, "1.2.1": two, "2.0.0": three, "latest": three, "junk": one})

    first = check({"source": source_for(server, repo)})
    assert first.code == 0, first.stderr
    assert first.answer == [
        {"tag": "1.0.0", "digest": one.digest},
        {"tag": "1.2.1", "digest": two.digest},
        {"tag": "2.0.0", "digest": three.digest},
    ]
    later = check({"source": source_for(server, repo), "version": first.answer[1]})
    assert later.answer == first.answer[1:]


def test_tag_mode_and_moved_tag(plain_registry: RegistryServer) -> None:
    old, new = images.image("old"), images.image("new")
    repo = seed(plain_registry, {"stable": old, "keep-old": old})
    cursor = {"tag": "stable", "digest": old.digest}
    seed_into(plain_registry, repo, {"stable": new})

    run = check({"Source": {"Repository": repo, "tag": "stable"}, "Version": cursor})
    assert run.answer == [cursor, {"tag": "stable", "digest": new.digest}]


def seed_into(server: RegistryServer, repo: str, tags: Mapping[str, images.Image]) -> None:
    client = RegistryClient(server.host, Transport())
    repository = Repository(server.host, repo.split("/", 1)[1])
    for tag, item in tags.items():
        images.push(client, repository, tag, item)


def test_regex_created_at_sort_on_an_index(plain_registry: RegistryServer) -> None:
    late = images.image("late", created="2024-05-01T00:00:00Z")
    early = images.index(
        [
            images.image("early-amd", created="2024-01-01T00:00:00Z"),
            images.image("early-arm", created="2025-01-01T00:00:00Z", architecture="arm64"),
        ]
    )
    repo = seed(plain_registry, {"build-late": late, "build-early": early, "other": late})
    source = {
        "repository": repo,
        "tag_regex": "^build-",
        "created_at_sort": True,
        "platform": {"architecture": "amd64", "os": "linux"},
    }
    assert [v["tag"] for v in check({"source": source}).answer] == ["build-early", "build-late"]
    source["platform"] = {"architecture": "arm64"}
    assert [v["tag"] for v in check({"source": source}).answer] == ["build-late", "build-early"]


def test_persistent_store_keeps_the_audit_trail(
    plain_registry: RegistryServer, tmp_path: Path
) -> None:
    first, second = images.image("audit-1"), images.image("audit-2")
    repo = seed(plain_registry, {"1.0.0": first, "latest": first})
    database = tmp_path / "trail.db"
    source = {"repository": repo, "store": f"sqlite:///{database}"}

    assert check({"source": source}).code == 0
    seed_into(plain_registry, repo, {"1.1.0": second, "latest": second})
    assert check({"source": source}).answer[-1] == {"tag": "1.1.0", "digest": second.digest}

    polls = [set(poll) for poll in split_polls(events(database))]
    assert polls == [
        {("TagAppeared", "1.0.0"), ("TagAppeared", "latest")},
        # the move's old and new manifests are described for the history
        {("TagAppeared", "1.1.0"), ("TagMoved", "latest"), ("ImageInspected", None)},
    ]


def split_polls(rows: list[tuple[str, str | None]]) -> list[list[tuple[str, str | None]]]:
    """Events grouped by the poll that recorded them (each poll starts with its PollSucceeded:
    the store inserts a poll's run before its tag events)."""
    polls: list[list[tuple[str, str | None]]] = []
    for row in rows:
        if row[0] == "PollSucceeded":
            polls.append([])
        else:
            assert polls, "every poll starts with PollSucceeded"
            polls[-1].append(row)
    return polls


def events(database: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT kind, payload FROM events ORDER BY position").fetchall()
    return [(kind, json.loads(payload).get("tag")) for kind, payload in rows]


@pytest.mark.parametrize(
    ("request_text", "fragment"),
    [
        ("{not json", "invalid payload: malformed JSON"),
        ('{"source": {"repository": "x", "nope": 1}}', 'unknown field "nope"'),
        (
            '{"source": {"repository": "x", "registry_mirror": {"hots": "m"}}}',
            'unknown field "hots"',
        ),
        ('{"source": {"repository": "Bad Name"}}', "resolve repository"),
    ],
)
def test_bad_requests(request_text: str, fragment: str) -> None:
    assert_fails(check(request_text), fragment)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"tag_regex": "("}, "invalid regex pattern: tag_regex"),
        ({"semver_constraint": ">>1.0"}, "improper constraint"),
    ],
)
def test_bad_rules_fail_and_write_nothing(
    plain_registry: RegistryServer, tmp_path: Path, extra: dict[str, str], fragment: str
) -> None:
    repo = seed(plain_registry, {"1.0.0": images.image("rules")})
    database = tmp_path / "none.db"
    run = check({"source": {"repository": repo, "store": f"sqlite:///{database}", **extra}})
    assert_fails(run, f"checking origin {repo} failed", fragment)
    assert events(database) == []


def test_unknown_repository_and_wrong_password(
    tls_registry: RegistryServer, tmp_path: Path
) -> None:
    database = tmp_path / "none.db"
    missing = source_for(
        tls_registry, f"{tls_registry.host}/no/such", store=f"sqlite:///{database}"
    )
    assert_fails(check({"source": missing}), "NAME_UNKNOWN")
    wrong = {**missing, "password": "wrong-" + uuid.uuid4().hex}
    run = check({"source": wrong})
    assert_fails(run, "401")
    assert wrong["password"] not in run.stderr
    assert events(database) == [("PollFailed", None)] * 2  # runs only: no fact about tags


def test_mirror_answers_for_docker_hub_images_with_its_own_credentials(
    tls_registry: RegistryServer,
) -> None:
    name = f"mirrored-{uuid.uuid4().hex[:8]}"
    item = images.image("mirrored")
    client = RegistryClient(
        tls_registry.host,
        Transport(ca_certs=[tls_registry.ca_pem or ""]),
        StaticCredentials(tls_registry.username or "", tls_registry.password or ""),
    )
    images.push(client, Repository(tls_registry.host, f"library/{name}"), "1.0.0", item)
    mirror = {
        "host": tls_registry.host,
        "username": tls_registry.username,
        "password": tls_registry.password,
    }
    source = {
        "repository": name,
        "username": "someone-else",
        "password": "not-for-the-mirror",
        "ca_certs": [tls_registry.ca_pem],
        "registry_mirror": mirror,
    }
    run = check({"source": source})
    assert run.code == 0, run.stderr
    assert run.answer == [{"tag": "1.0.0", "digest": item.digest}]
    assert "checking mirror" not in run.stderr


def test_mirror_is_ignored_for_other_registries(plain_registry: RegistryServer) -> None:
    item = images.image("not-mirrored")
    repo = seed(plain_registry, {"2.0.0": item})
    source = {"repository": repo, "registry_mirror": {"host": "127.0.0.1:9"}}
    run = check({"source": source})
    assert run.answer == [{"tag": "2.0.0", "digest": item.digest}], run.stderr
    assert "mirror" not in run.stderr


def test_bad_mirror_host() -> None:
    run = check({"source": {"repository": "busybox", "registry_mirror": {"host": "bad host!"}}})
    assert_fails(run, "failed to resolve mirror: parse mirror registry")

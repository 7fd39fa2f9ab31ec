"""One `Service` per process: polls share clients, tokens and the store (issue 9, finding 3).

Driven in process, as the daemon will drive it, against the real registries the suite starts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from regwatch.errors import AuthFailed
from regwatch.events import run_stream
from regwatch.refs import Repository
from regwatch.retrying import RetryPolicy
from regwatch.service import Service
from regwatch.specs import Access, PushSpec, Selection, TagDigest, WatchSpec
from regwatch.store import migrate
from regwatch.store.eventstore import EventStore
from tests import images
from tests.e2e.steps import client_for, source_for, step
from tests.registries import RegistryServer


def pushed(server: RegistryServer, *tags: str) -> tuple[Repository, images.Image]:
    repository = Repository(server.host, f"service/{uuid.uuid4().hex[:10]}")
    item = images.image(f"service-{repository.path}")
    for tag in tags:
        images.push(client_for(server), repository, tag, item)
    return repository, item


def access_to(server: RegistryServer, password: str | None = None) -> Access:
    return Access(
        server.username,
        password or server.password,
        (server.ca_pem,) if server.ca_pem else (),
    )


def runs(url: str, repository: Repository) -> list[tuple[str, dict[str, Any]]]:
    with migrate.open_store(url) as store:
        return [(e.kind, e.payload) for e in store.load(run_stream(repository.name))]


def test_polls_of_one_service_reuse_the_ping_and_the_token(
    token_registry: RegistryServer, tmp_path: Path
) -> None:
    repository, item = pushed(token_registry, "1.0")
    spec = WatchSpec(repository, Selection(tag="1.0"), access_to(token_registry))
    url = f"sqlite:///{tmp_path / 'trail.db'}"
    tokens = token_registry.token_service
    assert tokens is not None
    before = tokens.tokens_issued

    with Service(store=url) as service:
        first = service.poll(spec)
        second = service.poll(spec)
        third = service.poll(spec, TagDigest("1.0", item.digest))

    assert first.state.tags == second.state.tags == third.state.tags == {"1.0": item.digest}
    assert tokens.tokens_issued - before == 1, "one token for every poll of the process"
    spent = [payload["requests"] for kind, payload in runs(url, repository)]
    assert spent[0] >= 3, "the first poll pings, fetches a token and asks"
    assert spent[1:] == [1, 1], "later polls only ask: one HEAD each"


def test_a_new_service_pings_and_authenticates_again(
    token_registry: RegistryServer, tmp_path: Path
) -> None:
    repository, _ = pushed(token_registry, "1.0")
    spec = WatchSpec(repository, Selection(tag="1.0"), access_to(token_registry))
    url = f"sqlite:///{tmp_path / 'trail.db'}"

    for _ in range(2):
        with Service(store=url) as service:
            service.poll(spec)

    spent = [payload["requests"] for kind, payload in runs(url, repository)]
    assert len(spent) == 2
    assert spent[0] == spent[1] >= 3


def test_a_failed_poll_is_in_the_run_stream_with_the_users_line(
    tls_registry: RegistryServer, tmp_path: Path
) -> None:
    repository, _ = pushed(tls_registry, "1.0")
    wrong = WatchSpec(repository, Selection(tag="1.0"), access_to(tls_registry, "not-it"))
    url = f"sqlite:///{tmp_path / 'trail.db'}"

    with Service(store=url) as service, pytest.raises(AuthFailed) as failure:
        service.poll(wrong)

    [(kind, payload)] = runs(url, repository)
    assert kind == "PollFailed"
    assert payload["error"] == f"polling {repository} failed: {failure.value}"
    assert "not-it" not in payload["error"]
    assert payload["requests"] >= 1


def test_clients_are_kept_per_registry_and_access(tls_registry: RegistryServer) -> None:
    access = access_to(tls_registry)
    other = access_to(tls_registry, "another-password")
    with Service() as service:
        pool = service.clients
        assert pool.client(tls_registry.host, access) is pool.client(tls_registry.host, access)
        assert pool.client(tls_registry.host, access) is not pool.client(tls_registry.host, other)
        assert pool.transport(access) is pool.transport(other), "one transport per trust roots"
        kept = pool.client(tls_registry.host, access)
        pool.forget(tls_registry.host, access)
        assert pool.client(tls_registry.host, access) is not kept


@pytest.fixture
def opened_stores(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every store URL regwatch opens while the test runs."""
    opened: list[str] = []
    real: Callable[[str], EventStore] = migrate.open_store

    def counting(url: str) -> EventStore:
        opened.append(url)
        return real(url)

    monkeypatch.setattr(migrate, "open_store", counting)
    return opened


def test_a_push_with_aliases_opens_its_store_once(
    plain_registry: RegistryServer, tmp_path: Path, opened_stores: list[str]
) -> None:
    origin, item = pushed(plain_registry, "src")
    got = step(
        "in",
        {
            "source": source_for(plain_registry, str(origin)),
            "params": {"format": "oci"},
            "version": {"tag": "src", "digest": item.digest},
        },
        tmp_path / "fetched",
    )
    assert got.code == 0, got.stderr
    url = f"sqlite:///{tmp_path / 'trail.db'}"
    target = Repository(plain_registry.host, f"service/{uuid.uuid4().hex[:10]}")
    push = PushSpec(image="fetched/image.tar", version="1.2.3", bump_aliases=True)

    with Service(store=url, retry=RetryPolicy.from_env()) as service:
        done = service.put(WatchSpec(target), push, tmp_path)

    assert opened_stores == [url], "blob homes, the listing and the push share one store"
    assert sorted(done.metadata[1].value.split()) == ["1", "1.2", "1.2.3", "latest"]
    with migrate.open_store(url) as store:
        kinds = [stored.kind for stored in store.load(target.name)]
    assert kinds.count("TagAppeared") == 4
    assert "ImagePushed" in kinds

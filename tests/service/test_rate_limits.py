"""Polls that respect a registry's rate limit (issue 10): a 429 pauses that registry for a
daemon, and a low `ratelimit-remaining` makes config GETs wait.

A real registry neither rate-limits nor sends `ratelimit-*` headers, so the fault server plays
the limited registry; the healthy one beside it is the real registry.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from regwatch.errors import RateLimited
from regwatch.events import run_stream
from regwatch.refs import Repository
from regwatch.retrying import RetryPolicy
from regwatch.service import Service
from regwatch.service.clients import DEFAULT_PAUSE, ClientPool
from regwatch.specs import Selection, WatchSpec
from regwatch.store import migrate
from tests import images
from tests.e2e.steps import client_for
from tests.faults import (
    FaultRegistry,
    Reply,
    blob_path,
    manifest_path,
    manifest_reply,
    rate_limited,
    tags_path,
    tags_reply,
)
from tests.registries import RegistryServer

DAY = timedelta(hours=24)
DAEMON_RETRY = dataclasses.replace(RetryPolicy(), wait_out_rate_limits=False)
"""The Go resource's hour-long schedule, but a 429 fails at once: the daemon's policy."""


@pytest.fixture
def fault_registry() -> Iterator[FaultRegistry]:
    with FaultRegistry() as registry:
        yield registry
    assert registry.server_errors == [], "the fault registry crashed while answering"


def test_a_429_fails_a_daemon_poll_at_once_and_pauses_only_that_registry(
    fault_registry: FaultRegistry, plain_registry: RegistryServer, tmp_path: Path
) -> None:
    fault_registry.route("GET", tags_path("app"), rate_limited("30"))
    limited = WatchSpec(Repository(fault_registry.host, "app"), rescan=DAY)
    healthy_repository = Repository(plain_registry.host, f"limits/{uuid.uuid4().hex[:10]}")
    item = images.image(healthy_repository.path)
    images.push(client_for(plain_registry), healthy_repository, "1.0.0", item)
    healthy = WatchSpec(healthy_repository, rescan=DAY)
    url = f"sqlite:///{tmp_path / 'trail.db'}"
    slept: list[float] = []

    with Service(store=url, retry=DAEMON_RETRY, sleep=slept.append) as service:
        with pytest.raises(RateLimited) as first:
            service.poll(limited)
        assert first.value.retry_after == 30
        assert "429" in str(first.value)
        assert fault_registry.count("GET", tags_path("app")) == 1, "not retried"
        assert slept == [], "no worker waits out the limit"
        paused = service.clients.paused_until(fault_registry.host)
        assert paused is not None
        assert timedelta(seconds=29) < paused - service.now() <= timedelta(seconds=30)

        sent = fault_registry.count()
        with pytest.raises(RateLimited) as again:
            service.poll(limited)
        assert fault_registry.count() == sent, "a paused registry gets no request"
        assert "paused until" in str(again.value)

        assert service.clients.paused_until(plain_registry.host) is None
        assert service.poll(healthy).state.tags == {"1.0.0": item.digest}

    with migrate.open_store(url) as store:
        kinds = [e.kind for e in store.load(run_stream(limited.repository.name))]
    assert kinds == ["PollFailed", "PollFailed"]


def test_the_concourse_steps_still_wait_out_a_429(fault_registry: FaultRegistry) -> None:
    fault_registry.plan("GET", tags_path("app"), rate_limited("30"))
    fault_registry.route("GET", tags_path("app"), tags_reply("app", []))
    slept: list[float] = []

    with Service(retry=RetryPolicy(), sleep=slept.append) as service:
        poll = service.poll(WatchSpec(Repository(fault_registry.host, "app")))

    assert poll.observation.listed == ()
    assert len(slept) == 1
    assert slept[0] >= 30, "Retry-After honoured"
    assert service.clients.paused_until(fault_registry.host) is None


def _budget(reply: Reply, remaining: int) -> Reply:
    figures = {"RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": f"{remaining};w=21600"}
    return dataclasses.replace(reply, headers={**reply.headers, **figures})


def test_config_gets_wait_while_the_budget_is_below_the_reserve(
    fault_registry: FaultRegistry, tmp_path: Path
) -> None:
    item = images.image("limits-created")
    manifest = manifest_reply(item.manifest.data)
    fault_registry.route("GET", manifest_path("app", "1.0.0"), _budget(manifest, 5))
    fault_registry.route("GET", manifest_path("app", item.digest), manifest)
    config = Reply(200, item.config.data, {"Content-Type": "application/octet-stream"})
    fault_registry.route("GET", blob_path("app", item.config.digest), config)
    fault_registry.route("GET", tags_path("app"), tags_reply("app", ["1.0.0"]))
    selection = Selection(tag_regex=r"^1\.", created_at_sort=True)
    spec = WatchSpec(Repository(fault_registry.host, "app"), selection, rescan=DAY)
    url = f"sqlite:///{tmp_path / 'trail.db'}"

    with Service(store=url) as service:
        low = service.poll(spec)
        assert low.state.tags == {"1.0.0": item.digest}
        assert low.state.images == {}
        assert fault_registry.count("GET", manifest_path("app", item.digest)) == 0
        assert fault_registry.count("GET", blob_path("app", item.config.digest)) == 0

        fault_registry.route("GET", tags_path("app"), _budget(tags_reply("app", ["1.0.0"]), 50))
        later = service.poll(spec)

    assert set(later.state.images) == {item.digest}, "inspected once the budget allows"
    assert later.state.images[item.digest].created is not None
    assert fault_registry.count("GET", blob_path("app", item.config.digest)) == 1


def test_a_pause_ends_when_its_time_has_passed_and_never_shortens() -> None:
    clock = [datetime(2026, 12, 7, tzinfo=UTC)]
    pool = ClientPool(RetryPolicy(), 60.0, lambda _: None, now=lambda: clock[0])
    pool.pause("a.example", RateLimited("429", retry_after=30))
    pool.pause("a.example", RateLimited("429", retry_after=5))
    pool.pause("b.example", RateLimited("429"))
    assert pool.paused_until("a.example") == clock[0] + timedelta(seconds=30)
    assert pool.paused_until("b.example") == clock[0] + DEFAULT_PAUSE
    assert pool.paused_until("c.example") is None
    clock[0] += timedelta(seconds=30)
    assert pool.paused_until("a.example") is None
    pool.admit("a.example")
    with pytest.raises(RateLimited) as paused:
        pool.admit("b.example")
    assert paused.value.retry_after == 30

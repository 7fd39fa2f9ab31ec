"""Daemon polls spend requests only where news can be (issue 10, "Polling that respects
registries"): against the real registry, with the poll's time injected.

A watch with `rescan` (as the daemon sets it) lists the tags and resolves new tags, mutable ones
(`latest`, `1`, `1.2`) and the share of known full versions whose turn in the rescan cycle came;
a watch without it (a Concourse check) resolves every candidate, as the Go resource does.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from regwatch.events import run_stream
from regwatch.refs import Reference, Repository
from regwatch.rescan import Rescan
from regwatch.service import Service
from regwatch.specs import WatchSpec
from regwatch.store import migrate
from tests import images
from tests.e2e.steps import client_for
from tests.registries import RegistryServer

DAY = timedelta(hours=24)
EVERY = timedelta(minutes=5)
START = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
MUTABLE = ("1", "1.2", "latest")


class Clock:
    """The service's clock, moved by the test."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def seeded(server: RegistryServer, tags: Sequence[str]) -> tuple[Repository, images.Image]:
    """One image pushed once, then tagged with every tag: one manifest PUT per tag."""
    repository = Repository(server.host, f"economy/{uuid.uuid4().hex[:10]}")
    item = images.image(f"economy-{repository.path}")
    client = client_for(server)
    images.push(client, repository, tags[0], item)
    for tag in tags[1:]:
        ref = Reference(repository, tag=tag)
        client.put_manifest(ref, item.manifest.data, item.manifest.media_type)
    return repository, item


def retag(server: RegistryServer, repository: Repository, tag: str, item: images.Image) -> None:
    images.push(client_for(server), repository, tag, item)


def spent(url: str, repository: Repository) -> list[int]:
    """What each recorded poll of the repository cost, in requests."""
    with migrate.open_store(url) as store:
        return [int(e.payload["requests"]) for e in store.load(run_stream(repository.name))]


def due(versions: Sequence[str], cycle: timedelta, since: datetime, now: datetime) -> list[str]:
    return [tag for tag in versions if Rescan(cycle, now, since).due(tag)]


def test_a_steady_poll_lists_and_resolves_only_mutable_tags_and_the_rescan_share(
    plain_registry: RegistryServer, tmp_path: Path
) -> None:
    versions = [f"1.{minor}.{patch}" for minor in range(30) for patch in range(10)]
    repository, item = seeded(plain_registry, [*versions, *MUTABLE])
    url = f"sqlite:///{tmp_path / 'trail.db'}"
    clock = Clock(START)
    daemon = WatchSpec(repository, rescan=DAY)

    with Service(store=url, now=clock) as service:
        first = service.poll(daemon)
        clock.at += EVERY
        steady = service.poll(daemon)
        service.poll(WatchSpec(repository))
    clock.at += EVERY
    with Service(store=url, now=clock) as restarted:
        after_restart = restarted.poll(daemon)

    known = dict.fromkeys([*versions, *MUTABLE], item.digest)
    assert first.state.tags == steady.state.tags == after_restart.state.tags == known
    first_cost, steady_cost, check_cost, restart_cost = spent(url, repository)
    share = due(versions, DAY, START, START + EVERY)
    ping = first_cost - (1 + len(known))
    assert ping >= 1, "the first poll pings, lists and resolves every tag"
    assert steady_cost == 1 + len(MUTABLE) + len(share), "one list page, mutables, the share"
    assert steady_cost < 10
    assert check_cost == 1 + len(known), "without rescan: every candidate, as the Go resource"
    restart_share = due(versions, DAY, START + EVERY, START + 2 * EVERY)
    assert restart_cost == ping + 1 + len(MUTABLE) + len(restart_share), (
        "a new process starts its share at the last successful poll the log holds"
    )


def test_news_is_found_on_the_next_poll_and_a_repushed_version_within_one_rescan(
    plain_registry: RegistryServer, tmp_path: Path
) -> None:
    cycle = timedelta(hours=1)
    versions = [f"2.0.{patch}" for patch in range(24)]
    repository, item = seeded(plain_registry, [*versions, "latest"])
    other = images.image(f"economy-other-{repository.path}")
    url = f"sqlite:///{tmp_path / 'trail.db'}"
    clock = Clock(START)
    daemon = WatchSpec(repository, rescan=cycle)

    with Service(store=url, now=clock) as service:
        service.poll(daemon)
        images.push(client_for(plain_registry), repository, "2.1.0", other)
        retag(plain_registry, repository, "latest", other)
        clock.at += EVERY
        news = service.poll(daemon)
        assert news.state.tags["2.1.0"] == other.digest, "a new tag: the next poll"
        assert news.state.tags["latest"] == other.digest, "a moved latest: the next poll"

        repushed = versions[7]
        retag(plain_registry, repository, repushed, other)
        repushed_at = clock.at
        found_at = None
        while clock.at < repushed_at + cycle + EVERY:
            since = clock.at
            clock.at += EVERY
            poll = service.poll(daemon)
            if poll.state.tags[repushed] == other.digest:
                found_at = clock.at
                assert Rescan(cycle, clock.at, since).due(repushed), "found on its turn"
                break
            assert poll.state.tags[repushed] == item.digest
    assert found_at is not None, "a re-pushed version is found within one rescan cycle"
    assert found_at - repushed_at <= cycle

"""Three daemons on one PostgreSQL behave as one that cannot die.

Real `regwatch watch` processes with one config (watches every 2 s, one webhook sink), the
suite's PostgreSQL and registry. One daemon is SIGKILLed mid-run, another joins later; every
claim is then checked from the log: the gaps between two polls of a watch, who polled, and
what the sink received.
"""

from __future__ import annotations

import itertools
import signal
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
import yaml

from regwatch.events import RUN_STREAM_SUFFIX
from regwatch.refs import Repository
from regwatch.store.migrate import open_store
from tests.e2e.steps import Daemon
from tests.e2e.test_notify import Pusher, Receiver
from tests.registries import RegistryServer

PERIOD = timedelta(seconds=2)
WATCHES = 4
PHASE = 10.0
"""Seconds each phase of the fleet runs: three daemons; two after a SIGKILL; three again."""


def fleet_daemon(config: Path, name: str) -> Daemon:
    return Daemon(config, name=name, env={"REGWATCH_RETRY_BASE_SECONDS": "0.05"})


def polls(url: str) -> dict[str, list[tuple[datetime, str]]]:
    """Each watch's successful polls: (when, which daemon's pid), in time order."""
    found: dict[str, list[tuple[datetime, str]]] = {}
    with open_store(url) as store:
        after = 0
        while page := store.read_all(after, 1000):
            for event in page:
                if event.stream.endswith(RUN_STREAM_SUFFIX) and event.kind == "PollSucceeded":
                    pid = str(event.payload["daemon"]).rpartition(":")[2]
                    found.setdefault(event.payload["watch"], []).append((event.observed_at, pid))
            after = page[-1].position
    return {watch: sorted(runs) for watch, runs in found.items()}


def sink_holder(url: str) -> str | None:
    with open_store(url) as store, store.engine.connect() as connection:
        owner = connection.execute(
            sa.text("SELECT owner, held_until FROM leases WHERE name = 'sink:hook'")
        ).first()
    return None if owner is None or owner[1] is None else str(owner[0]).rpartition(":")[2]


def test_three_daemons_share_the_watches_survive_a_kill_and_take_in_a_newcomer(
    plain_registry: RegistryServer,
    postgres_url: str,
    tmp_path: Path,
    daemons: list[Daemon],
) -> None:
    workdir = tmp_path / "skopeo"
    workdir.mkdir()
    pusher = Pusher(plain_registry, workdir)
    receiver = Receiver().start()
    try:
        repositories = [
            Repository(plain_registry.host, f"fleet/{uuid.uuid4().hex[:8]}") for _ in range(WATCHES)
        ]
        for number, repository in enumerate(repositories):
            pusher.push(repository, "1.0.0", f"fleet-{number}-one")
        config = tmp_path / "fleet.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "store": postgres_url,
                    "watches": [
                        {"name": f"w{n}", "source": {"repository": str(r)}, "every": "2s"}
                        for n, r in enumerate(repositories)
                    ],
                    "notify": [{"name": "hook", "webhook": {"url": receiver.url("/hook")}}],
                }
            )
        )

        daemons.extend(fleet_daemon(config, name) for name in ("a", "b", "c"))
        time.sleep(PHASE)
        pusher.push(repositories[0], "1.1.0", "fleet-0-two")
        time.sleep(PHASE / 2)
        leader = sink_holder(postgres_url)
        victim = next(d for d in daemons if str(d.pid) == leader)
        killed_at = datetime.now().astimezone()
        victim.stop(signal.SIGKILL)
        pusher.push(repositories[1], "1.1.0", "fleet-1-two")
        time.sleep(PHASE)
        newcomer = fleet_daemon(config, "d")
        daemons.append(newcomer)
        joined_at = datetime.now().astimezone()
        time.sleep(PHASE)
        pusher.push(repositories[2], "1.1.0", "fleet-2-two")
        time.sleep(PHASE / 2)
        for daemon in daemons:
            if daemon is not victim:
                assert daemon.stop() == 0, daemon.log.read_text()
    finally:
        receiver.stop()

    runs = polls(postgres_url)
    assert sorted(runs) == [f"w{n}" for n in range(WATCHES)]
    for watch, seen in runs.items():
        gaps = [(b - a).total_seconds() for (a, _), (b, _) in itertools.pairwise(seen)]
        assert min(gaps) >= 1.2, f"{watch} polled twice within one period: {gaps}"
        # decisions: a dead daemon's watches are polled again within two intervals plus 10 s
        assert max(gaps) <= 2 * PERIOD.total_seconds() + 10, f"{watch} waited: {gaps}"
        span = (seen[-1][0] - seen[0][0]).total_seconds()
        assert len(seen) >= 0.6 * span / PERIOD.total_seconds(), f"{watch} missed turns"
    pollers = {pid for seen in runs.values() for _, pid in seen}
    assert {str(d.pid) for d in daemons} <= pollers, "every daemon polled its share"
    assert any(
        pid == str(newcomer.pid) and when > joined_at
        for seen in runs.values()
        for when, pid in seen
    )
    assert not any(
        pid == str(victim.pid) and when > killed_at + timedelta(seconds=1)
        for seen in runs.values()
        for when, pid in seen
    )

    delivered = receiver.events("/hook")
    ids = [event["id"] for event in delivered]
    moved = [
        (e["data"]["repository"], e["data"]["tag"]) for e in delivered if e["subject"] == "1.1.0"
    ]
    for repository in repositories[:3]:
        assert (repository.name, "1.1.0") in moved, f"{repository} was announced"
    clean = [
        event["id"]
        for event in delivered
        if event["data"].get("repository") == repositories[2].name
    ]
    assert len(clean) == len(set(clean)), "after the failover each event is delivered once"
    assert len(set(ids)) >= len(ids) - 1, "at most the event in flight at the kill came twice"
    for daemon in daemons:
        assert "Traceback" not in daemon.log.read_text()

"""When a check with `max_age` trusts the log: the age of the newest successful poll, either way.

Driven in process with an injected clock against the suite's plain registry: a check answered
from the log appends no run, one that polled appends its own.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from regwatch.events import PollFailed, run_stream
from regwatch.refs import Repository
from regwatch.service import Service
from regwatch.service.recording import record_run
from regwatch.specs import Selection, TagDigest, WatchSpec
from regwatch.store import migrate
from tests import images
from tests.e2e.steps import client_for
from tests.registries import RegistryServer

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
MAX_AGE = timedelta(minutes=2)


def runs(url: str, repository: Repository) -> list[str]:
    with migrate.open_store(url) as store:
        return [e.kind for e in store.load(run_stream(repository.name))]


@pytest.fixture
def watched(plain_registry: RegistryServer) -> tuple[WatchSpec, str]:
    repository = Repository(plain_registry.host, f"fresh/{uuid.uuid4().hex[:10]}")
    image = images.image(f"fresh-{repository.path}")
    images.push(client_for(plain_registry), repository, "stable", image)
    return WatchSpec(repository, Selection(tag="stable"), max_age=MAX_AGE), image.digest


@pytest.mark.parametrize(
    ("age", "from_log"),
    [
        (timedelta(seconds=119), True),
        (timedelta(seconds=120), False),
        (timedelta(seconds=-119), True),
        (timedelta(seconds=-121), False),
    ],
    ids=["younger", "as-old-as-max-age", "clock-behind", "clock-far-behind"],
)
def test_a_check_trusts_a_poll_younger_than_max_age_either_way(
    watched: tuple[WatchSpec, str], tmp_path: Path, age: timedelta, from_log: bool
) -> None:
    spec, digest = watched
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    with Service(store=url, now=lambda: T0) as service:
        first = service.check(spec, None)

    with Service(store=url, now=lambda: T0 + age) as service:
        again = service.check(spec, TagDigest("stable", digest))

    assert first == again == [TagDigest("stable", digest)]
    assert len(runs(url, spec.repository)) == (1 if from_log else 2)


def test_a_failed_poll_after_a_fresh_success_does_not_hide_it(
    watched: tuple[WatchSpec, str], tmp_path: Path
) -> None:
    """The success's observation is still younger than `max_age`: what `max_age` promises."""
    spec, digest = watched
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    with Service(store=url, now=lambda: T0) as service:
        service.check(spec, None)
    failed = PollFailed(error="polling x failed: 503", requests=1, duration_seconds=0.1)
    with migrate.open_store(url) as store:
        record_run(store, spec.repository.name, failed, T0 + timedelta(seconds=10))

    with Service(store=url, now=lambda: T0 + timedelta(seconds=30)) as service:
        answer = service.check(spec, None)

    assert answer == [TagDigest("stable", digest)]
    assert runs(url, spec.repository) == ["PollSucceeded", "PollFailed"]


def test_without_max_age_a_check_always_polls(
    watched: tuple[WatchSpec, str], tmp_path: Path
) -> None:
    spec, _ = watched
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    plain = WatchSpec(spec.repository, spec.selection)
    with Service(store=url, now=lambda: T0) as service:
        service.check(plain, None)
        service.check(plain, None)

    assert runs(url, spec.repository) == ["PollSucceeded", "PollSucceeded"]

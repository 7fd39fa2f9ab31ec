"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.steps import Daemon


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """The daemons a test starts, killed at its end whatever happens."""
    started: list[Daemon] = []
    yield started
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait(10)

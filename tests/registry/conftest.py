"""Fixtures for the registry tests that need a fake registry rather than a real one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults import FaultRegistry


@pytest.fixture
def fault_registry() -> Iterator[FaultRegistry]:
    """A scripted fake registry on 127.0.0.1 (see ``tests.faults``), fresh for every test.

    Fails the test at teardown if the fake itself crashed while answering.
    """
    with FaultRegistry() as registry:
        yield registry
    assert registry.server_errors == [], "the fault registry crashed while answering"

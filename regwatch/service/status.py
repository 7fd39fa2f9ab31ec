"""What the log says about each watch's repository: its last poll, outcome and tags known.

A read model for `regwatch status`, answered from the run stream's newest event and the tag
stream's state; it reads an existing store and never creates or changes one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from regwatch.events import run_stream
from regwatch.service.recording import last_success as recorded_success
from regwatch.service.recording import load_state
from regwatch.specs import WatchSpec

if TYPE_CHECKING:
    from regwatch.service.app import Service
    from regwatch.store.eventstore import EventStore


@dataclass(frozen=True)
class RepositoryStatus:
    """One watched repository as the log knows it; `outcome` is `ok`, `failed` or `never`."""

    repository: str
    outcome: str
    last_poll: datetime | None = None
    error: str | None = None
    tags_known: int = 0
    daemon: str | None = None


def repository_status(service: Service, specs: Sequence[WatchSpec]) -> list[RepositoryStatus]:
    """The status of each spec's repository, in order; all `never` when there is no store yet."""
    store = service.existing_store()
    if store is None:
        return [RepositoryStatus(spec.repository.name, "never") for spec in specs]
    return [_status_of(store, spec.repository.name) for spec in specs]


def last_success(service: Service, spec: WatchSpec) -> datetime | None:
    """When the repository was last polled successfully (by anyone), from its run stream."""
    store = service.existing_store()
    return None if store is None else recorded_success(store, spec.repository.name)


def _status_of(store: EventStore, repository: str) -> RepositoryStatus:
    runs = run_stream(repository)
    last = store.latest(runs)
    if last is None:
        return RepositoryStatus(repository, "never")
    failed = last.kind == "PollFailed"
    state, _ = load_state(store, repository)
    daemon = last.payload.get("daemon")
    error = last.payload.get("error")
    return RepositoryStatus(
        repository,
        "failed" if failed else "ok",
        last_poll=last.observed_at,
        error=str(error) if failed and error is not None else None,
        tags_known=len(state.tags),
        daemon=str(daemon) if daemon else None,
    )

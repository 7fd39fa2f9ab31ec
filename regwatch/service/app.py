"""The application: one `Service` per process, and the use cases front ends call on it.

A front end builds the service once, with the store's URL, the clock and the retry policy it
read from the environment, and calls use cases on it: a Concourse step calls one, the daemon
calls `poll` for every due watch. The service owns the store (opened on first use, once) and
the pool of registry clients, so connections, pings and tokens outlive a single poll.

Each use case's module is imported when it is first called: `in`'s rootfs pipeline and
`out`'s image loading cost a check nothing, and SQLAlchemy is imported only once a store is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from regwatch.errors import StoreError
from regwatch.retrying import RetryPolicy
from regwatch.specs import (
    Access,
    FetchSpec,
    Metadata,
    Pushed,
    PushSpec,
    Selection,
    TagDigest,
    WatchSpec,
)

if TYPE_CHECKING:
    from regwatch.events import Event
    from regwatch.observe import Observation
    from regwatch.projections.history import Movement
    from regwatch.refs import Repository
    from regwatch.service.clients import ClientPool, CredentialLookup
    from regwatch.service.polling import Poll
    from regwatch.service.status import RepositoryStatus
    from regwatch.service.unpack import Progress
    from regwatch.store.eventstore import EventStore

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Service:
    """Store, registry clients, clock and retry policy, shared by every use case of a process.

    Use it as a context manager: leaving it closes the store and every connection.
    """

    def __init__(
        self,
        *,
        store: str | None = None,
        now: Clock = utc_now,
        retry: RetryPolicy | None = None,
        request_timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        polled_by: str = "check",
        daemon: str | None = None,
        on_answer: Callable[[str, int], None] | None = None,
        credentials: CredentialLookup | None = None,
    ) -> None:
        self.now = now
        self.polled_by = polled_by
        """What the runs say polled: `check` (a Concourse step) or `watch` (the daemon)."""
        self.daemon = daemon
        """The daemon process (`host:pid`) the runs name; None for a step."""
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self._pool_settings = (request_timeout, on_answer, credentials)
        self._clients: ClientPool | None = None
        self._clients_lock = threading.Lock()
        self._store_url = store or None
        self._store: EventStore | None = None
        self.polled_at: dict[tuple[str, Selection], datetime] = {}
        """When each (repository, selection) was last polled successfully by this process: where
        its next share of known versions to re-verify starts (`regwatch.rescan`)."""

    def __enter__(self) -> Service:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def clients(self) -> ClientPool:
        """The registry clients, made on first use: a command that only reads the store
        (`history`, `status`) never loads the HTTP stack."""
        with self._clients_lock:
            if self._clients is None:
                from regwatch.retrying import DEFAULT_REQUEST_TIMEOUT  # noqa: PLC0415
                from regwatch.service.clients import ClientPool  # noqa: PLC0415

                timeout, on_answer, credentials = self._pool_settings
                self._clients = ClientPool(
                    self.retry,
                    timeout or DEFAULT_REQUEST_TIMEOUT,
                    self.sleep,
                    on_answer=on_answer,
                    credentials=credentials,
                    now=self.now,
                )
            return self._clients

    def close(self) -> None:
        if self._clients is not None:
            self._clients.close()
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def store_shown(self) -> str:
        """The store's URL as it may be shown: no password, query values masked."""
        if self._store_url is None:
            return "(none)"
        from regwatch.store.engine import shown  # noqa: PLC0415  # see `store`

        return shown(self.store().engine.url)

    @property
    def store_url(self) -> str | None:
        """The store's URL as given (it may hold a password: never show it; see `store_named`)."""
        return self._store_url

    @property
    def store_named(self) -> str:
        """The store's URL as it may be shown, without opening (or creating) the store."""
        if self._store_url is None:
            return "(none)"
        from regwatch.store.engine import shown_text  # noqa: PLC0415  # see `store`

        return shown_text(self._store_url)

    @property
    def persistent(self) -> bool:
        """Whether observations are kept: only then are they recorded."""
        return self._store_url is not None

    def store(self) -> EventStore:
        """The store, opened (and its schema checked) on first use; only with a store URL."""
        if self._store_url is None:
            raise StoreError("this service has no store")
        if self._store is None:
            # Imported here: SQLAlchemy and Alembic cost ~0.4 s of start-up, which the steps
            # without a store never pay.
            from regwatch.store.migrate import open_store  # noqa: PLC0415

            self._store = open_store(self._store_url)
        return self._store

    def existing_store(self) -> EventStore | None:
        """The store for reading only: None when it does not exist yet. Never creates one."""
        if self._store_url is None:
            return None
        if self._store is None:
            from regwatch.store.existing import open_existing  # noqa: PLC0415  # see `store`

            self._store = open_existing(self._store_url)
        return self._store

    # -- use cases -----------------------------------------------------------------------------

    def poll(
        self, spec: WatchSpec, cursor: TagDigest | None = None, *, watch: str | None = None
    ) -> Poll:
        """Observe the watch's repository, decide, and append what changed with the run,
        which names `watch` (the daemon's watch; None for a Concourse step)."""
        from regwatch.service.polling import poll  # noqa: PLC0415

        return poll(self, spec, cursor, watch=watch)

    def check(self, spec: WatchSpec, cursor: TagDigest | None) -> list[TagDigest]:
        from regwatch.service.check import check  # noqa: PLC0415

        return check(self, spec, cursor)

    def get(
        self,
        spec: WatchSpec,
        fetch: FetchSpec,
        destination: Path,
        *,
        progress: Progress | None = None,
    ) -> list[Metadata]:
        from regwatch.service.get import get  # noqa: PLC0415

        return get(self, spec, fetch, destination, progress=progress)

    def put(
        self, spec: WatchSpec, push: PushSpec, sources: Path, *, progress: Progress | None = None
    ) -> Pushed:
        from regwatch.service.put import put  # noqa: PLC0415

        return put(self, spec, push, sources, progress=progress)

    def history(self, repository: Repository) -> list[Movement]:
        """Every tag event of the repository as a history row (`regwatch history`); reads only."""
        from regwatch.service.history import history  # noqa: PLC0415

        return history(self, repository)

    def status(self, specs: Sequence[WatchSpec]) -> list[RepositoryStatus]:
        """What the log knows of each spec's repository (`regwatch status`); reads only."""
        from regwatch.service.status import repository_status  # noqa: PLC0415

        return repository_status(self, specs)

    def last_success(self, spec: WatchSpec) -> datetime | None:
        """When the spec's repository was last polled successfully, from the log."""
        from regwatch.service.status import last_success  # noqa: PLC0415

        return last_success(self, spec)

    def drop_runs(self, observed_before: datetime, passed: int | None = None) -> int:
        """Retention: job runs observed before the moment go (never tag history), and none
        past position `passed` (what every notification sink has read)."""
        return self.store().drop_runs(observed_before, passed)

    def list_tags(self, repository: str, access: Access) -> list[str]:
        from regwatch.service.lookup import list_tags  # noqa: PLC0415

        return list_tags(self, repository, access)

    def resolve_digest(self, reference: str, access: Access) -> str:
        from regwatch.service.lookup import resolve_digest  # noqa: PLC0415

        return resolve_digest(self, reference, access)

    def migrate(self) -> str:
        """Bring the store's schema to this regwatch's (`regwatch migrate`); one line of news."""
        from regwatch.service.migration import migrate_store  # noqa: PLC0415

        return migrate_store(self._store_url or "")

    # -- recording -----------------------------------------------------------------------------

    def record_aside(
        self, stream: str, observation: Observation, extra: Sequence[Event] = ()
    ) -> None:
        """Record what `in` or `out` saw, when a store keeps it. The log is their audit trail,
        not their work: a store that fails costs a warning, never the download or push."""
        if not self.persistent:
            return
        from regwatch.service.recording import load_state, record  # noqa: PLC0415

        try:
            store = self.store()
            state, version = load_state(store, stream)
            record(store, stream, state, version, observation, extra, sleep=self.sleep)
        except StoreError as exc:
            log.warning("recording %s in the store failed; carrying on without it: %s", stream, exc)

"""`regwatch history`: a repository's tag history, read from a store that exists, never made.

The rows are the history projection of the repository's stream; job runs live in another
stream and are never read, so retention cannot change an answer. A plain SQLite file is read
with the stdlib driver (`store.sqlitelog`), so the command answers without SQLAlchemy's
start-up; any other store, or one at another revision, through `EventStore`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from regwatch.errors import StoreError
from regwatch.projections.history import Movement, movements
from regwatch.refs import Repository
from regwatch.store.sqlitelog import SQLiteLog, sqlite_file

if TYPE_CHECKING:
    from regwatch.service.app import Service


def history(service: Service, repository: Repository) -> list[Movement]:
    """Every tag event of `repository`, oldest first; none for a repository never recorded.

    A store that does not exist (or holds no regwatch schema) is an error: it cannot be the
    one the user meant, and reading it must not create it.
    """
    stream = repository.name
    path = sqlite_file(service.store_url or "")
    if path is not None:
        log = SQLiteLog.open(path)
        if log is not None:
            with log:
                return movements(stream, log.load(stream))
        if not os.path.isfile(path):
            raise _missing(service)
    store = service.existing_store()
    if store is None:
        raise _missing(service)
    return movements(stream, store.load(stream))


def _missing(service: Service) -> StoreError:
    return StoreError(f"store {service.store_named} does not exist (nothing recorded there)")

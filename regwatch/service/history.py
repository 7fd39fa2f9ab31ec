"""`regwatch history`: a repository's tag history, read from a store that exists, never made.

The rows are the history projection of the repository's stream; job runs live in another
stream and are never read, so retention cannot change an answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from regwatch.errors import StoreError
from regwatch.projections.history import Movement, movements
from regwatch.refs import Repository

if TYPE_CHECKING:
    from regwatch.service.app import Service


def history(service: Service, repository: Repository) -> list[Movement]:
    """Every tag event of `repository`, oldest first; none for a repository never recorded.

    A store that does not exist (or holds no regwatch schema) is an error: it cannot be the
    one the user meant, and reading it must not create it.
    """
    store = service.existing_store()
    if store is None:
        raise StoreError(f"store {service.store_named} does not exist (nothing recorded there)")
    return movements(repository.name, store.load(repository.name))

"""The use cases: the one place that wires registry, observations, store and projections.

Front ends call these and nothing deeper, so every front end shares one path: the stateless
Concourse steps run the same observe → decide → append → project flow as the daemon will,
appending only when `source.store` names a persistent store (nothing else would keep it).

Each use case's module is imported when the front end first names it: `regwatch digest` loads
`lookup` (a registry client) and never `check`, `get` or `put` (pydantic models, the image
formats, the store). SQLAlchemy and Alembic are imported only by a step that opens a store.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regwatch.download import Layer as Layer
    from regwatch.image.removal import remove_tree as remove_tree
    from regwatch.service.access import Access as Access
    from regwatch.service.check import check as check
    from regwatch.service.get import get as get
    from regwatch.service.lookup import list_tags as list_tags
    from regwatch.service.lookup import resolve_digest as resolve_digest
    from regwatch.service.migration import migrate_store as migrate_store
    from regwatch.service.put import Pushed as Pushed
    from regwatch.service.put import put as put
    from regwatch.service.wiring import Metadata as Metadata

_WHERE = {
    "Layer": "regwatch.download",
    "remove_tree": "regwatch.image.removal",
    "Access": "regwatch.service.access",
    "check": "regwatch.service.check",
    "get": "regwatch.service.get",
    "list_tags": "regwatch.service.lookup",
    "resolve_digest": "regwatch.service.lookup",
    "migrate_store": "regwatch.service.migration",
    "Pushed": "regwatch.service.put",
    "put": "regwatch.service.put",
    "Metadata": "regwatch.service.wiring",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value


class _UseCases(types.ModuleType):
    """`check`, `get` and `put` are use cases named like their modules: importing a module
    must not replace the use case of its name (the import system sets it on the package)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in _WHERE:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _UseCases

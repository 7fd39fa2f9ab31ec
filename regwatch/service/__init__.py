"""The use cases: the one place that wires registry, observations, store and projections.

Front ends call these and nothing deeper, so every front end shares one path: the stateless
Concourse steps run the same observe → decide → append → project flow as the daemon will,
appending only when `source.store` names a persistent store (nothing else would keep it).
SQLAlchemy and Alembic are imported only by a step that opens a store.
"""

from regwatch.download import Layer as Layer
from regwatch.image.removal import remove_tree as remove_tree
from regwatch.service.check import check as check
from regwatch.service.get import get as get
from regwatch.service.lookup import list_tags as list_tags
from regwatch.service.lookup import resolve_digest as resolve_digest
from regwatch.service.migration import migrate_store as migrate_store
from regwatch.service.put import Pushed as Pushed
from regwatch.service.put import put as put
from regwatch.service.wiring import Access as Access
from regwatch.service.wiring import Metadata as Metadata

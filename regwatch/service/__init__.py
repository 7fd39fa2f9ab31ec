"""The application layer: one `Service` per process, the use cases front ends call on it.

Front ends call the service and nothing deeper, so every front end shares one path: the
Concourse steps run the same observe → decide → append → project flow as the daemon.
Importing this package costs the service alone; each use case loads its modules when called.
"""

from typing import TYPE_CHECKING

from regwatch.image.removal import remove_tree as remove_tree
from regwatch.service.app import Service as Service
from regwatch.service.app import utc_now as utc_now

if TYPE_CHECKING:  # named by front ends for typing only: importing them costs pydantic
    from regwatch.image.model import Descriptor as Descriptor

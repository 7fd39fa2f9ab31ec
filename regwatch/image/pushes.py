"""What `out` pushes, whichever format it was loaded from: blobs that can be opened again for
every retry, and manifests in push order."""

from __future__ import annotations

import shutil
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from regwatch.image.files import Opener
from regwatch.image.model import Descriptor


@dataclass(frozen=True)
class BlobSource:
    """One blob to upload: what it is, and `open()`, a new reader of exactly its bytes on each
    call (every retry reads it again)."""

    descriptor: Descriptor
    open: Opener = field(repr=False, compare=False)


@dataclass(frozen=True)
class ManifestToPush:
    digest: str
    media_type: str
    body: bytes = field(repr=False)


@dataclass(frozen=True)
class LoadedImage:
    """What to push: blobs, then manifests in push order (children before their index).

    `top` is what the tags point at; it is also the last of `manifests`. `scratch` is a
    temporary directory holding blobs made while loading (gzipped layers of a tarball): it is
    removed by `close()` (or leaving the `with` block), at the latest when the object is
    garbage-collected or the interpreter exits. Blob readers must not be opened after that.
    """

    blobs: tuple[BlobSource, ...]
    manifests: tuple[ManifestToPush, ...]
    top: ManifestToPush
    scratch: Path | None = field(default=None, repr=False, compare=False)
    _cleanup: Callable[[], object] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.scratch is not None:
            cleanup = weakref.finalize(self, _remove_tree, self.scratch)
            object.__setattr__(self, "_cleanup", cleanup)

    def close(self) -> None:
        """Remove the temporary blobs, if any; safe to call more than once."""
        if self._cleanup is not None:
            self._cleanup()

    def __enter__(self) -> LoadedImage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

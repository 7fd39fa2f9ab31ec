"""Getting an image into a directory as a rootfs, and the result files `in` writes beside it.

The first layer is applied as it streams in while the later ones download ahead into a spool
directory beside the rootfs; layers are applied strictly in manifest order, and no layer is
ever held in memory.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Protocol

from regwatch.image.digests import VerifyingReader
from regwatch.image.model import Descriptor
from regwatch.image.rootfs import apply_layer
from regwatch.registry.images import ImageSource, PlatformImage

PREFETCH = 3
"""Layers downloading ahead of the one being applied."""

_SPOOL_CHUNK = 1024 * 1024


class Progress(Protocol):
    """Where download progress goes (a terminal, plain log lines, or nowhere)."""

    def begin(self, layers: Sequence[Descriptor]) -> None: ...

    def advance(self, digest: str, amount: int) -> None: ...

    def finish(self, digest: str) -> None: ...


class NoProgress:
    def begin(self, layers: Sequence[Descriptor]) -> None:
        pass

    def advance(self, digest: str, amount: int) -> None:
        pass

    def finish(self, digest: str) -> None:
        pass


def write_rootfs(
    root: Path,
    source: ImageSource,
    image: PlatformImage,
    progress: Progress,
    *,
    on_debug: Callable[[str], None] | None = None,
    prefetch: int = PREFETCH,
) -> None:
    """Apply every layer to `root` in order; later layers download while earlier ones apply."""
    layers = image.layers
    progress.begin(layers)
    if not layers:
        return
    root.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(dir=root.parent, prefix=".regwatch-layers-") as spool,
        ThreadPoolExecutor(max_workers=max(1, prefetch)) as pool,
    ):
        ahead: list[Future[Path]] = [
            pool.submit(_spool_layer, source, layer, Path(spool), progress) for layer in layers[1:]
        ]
        try:
            for index, layer in enumerate(layers, start=1):
                if on_debug:
                    on_debug(f"extracting layer {index} of {len(layers)}")
                name = f"layer {index} ({layer.digest})"
                if index == 1:
                    _apply_streaming(root, source, layer, name, progress, on_debug)
                    continue
                path = ahead[index - 2].result()
                with path.open("rb") as spooled:
                    apply_layer(root, spooled, name=name, on_debug=on_debug)
                path.unlink()
        except BaseException:
            for future in ahead:
                future.cancel()
            raise


def _apply_streaming(
    root: Path,
    source: ImageSource,
    layer: Descriptor,
    name: str,
    progress: Progress,
    on_debug: Callable[[str], None] | None,
) -> None:
    try:
        with source.open_blob(layer.digest, layer.size) as blob:
            counted = _Counted(blob, layer.digest, progress)
            apply_layer(root, counted, name=name, on_debug=on_debug)
            while counted.read(_SPOOL_CHUNK):  # the rest of the blob: verifies its digest
                pass
    finally:
        progress.finish(layer.digest)


def _spool_layer(source: ImageSource, layer: Descriptor, spool: Path, progress: Progress) -> Path:
    """Download one layer to a file beside the rootfs; the digest is verified as it arrives."""
    path = spool / layer.digest.replace(":", "-")
    try:
        with source.open_blob(layer.digest, layer.size) as blob, path.open("wb") as out:
            for chunk in blob:
                out.write(chunk)
                progress.advance(layer.digest, len(chunk))
    finally:
        progress.finish(layer.digest)
    return path


class _Counted:
    """A reader that reports the compressed bytes read to the progress display."""

    def __init__(self, inner: BinaryIO | VerifyingReader, digest: str, progress: Progress) -> None:
        self._inner = inner
        self._digest = digest
        self._progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        if data:
            self._progress.advance(self._digest, len(data))
        return data


def write_small_file(path: Path, content: str | bytes) -> None:
    """Write a result file (0644) whole or not at all."""
    data = content.encode() if isinstance(content, str) else content
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp)
        raise

"""Getting an image into a directory: the manifest by digest, the platform's image, its blobs.

For a rootfs the first layer is applied as it streams in while the later ones download ahead
into a spool directory beside it; layers are applied strictly in manifest order, and no layer
is ever held in memory.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from regwatch.errors import UnsupportedMedia
from regwatch.image.digests import VerifyingReader
from regwatch.image.documents import (
    MAX_DOCUMENT_BYTES,
    Descriptor,
    ImageConfig,
    ImageManifest,
    Index,
    parse_image_config,
    too_large,
)
from regwatch.image.manifests import Platform, parse_manifest, select_child
from regwatch.image.rootfs import apply_layer
from regwatch.refs import Reference, Repository
from regwatch.registry.client import Manifest, RegistryClient

PREFETCH = 3
"""Layers downloading ahead of the one being applied."""

_SPOOL_CHUNK = 1024 * 1024


class Progress(Protocol):
    """Where download progress goes (a terminal, plain log lines, or nowhere)."""

    def begin(self, layers: Sequence[Layer]) -> None: ...

    def advance(self, digest: str, amount: int) -> None: ...

    def finish(self, digest: str) -> None: ...


class NoProgress:
    def begin(self, layers: Sequence[Layer]) -> None:
        pass

    def advance(self, digest: str, amount: int) -> None:
        pass

    def finish(self, digest: str) -> None:
        pass


@dataclass(frozen=True)
class Layer:
    digest: str
    size: int
    media_type: str


@dataclass(frozen=True)
class PlatformImage:
    """One image (a platform's child when the digest named an index), with its config."""

    digest: str
    media_type: str
    manifest: ImageManifest
    config_digest: str
    config_size: int
    config: ImageConfig
    layers: tuple[Layer, ...] = field(default=())

    @property
    def labels(self) -> dict[str, str]:
        return self.config.labels

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.manifest.annotations or {})


class ImageSource:
    """The images of one repository, read through a registry client.

    This is where registry JSON becomes typed: every manifest is validated as a manifest or
    index when it arrives, every config as an image config, each failure one line naming it.
    """

    def __init__(self, client: RegistryClient, repository: Repository) -> None:
        self.client = client
        self.repository = repository
        self._documents: dict[str, ImageManifest | Index] = {}

    def manifest(self, digest: str) -> Manifest:
        """A manifest by digest; its bytes are checked against the digest, its content parsed."""
        manifest = self.client.get_manifest(Reference(self.repository, digest=digest))
        self.document(manifest)
        return manifest

    def document(self, manifest: Manifest) -> ImageManifest | Index:
        """The typed content of a manifest this source fetched (parsed once per digest)."""
        digest = manifest.descriptor.digest
        document = self._documents.get(digest)
        if document is None:
            name = f"{self.repository}@{digest}"
            document = parse_manifest(manifest.body, manifest.descriptor.media_type, name)
            self._documents[digest] = document
        return document

    def fetch_manifest(self, digest: str) -> tuple[str, bytes]:
        manifest = self.manifest(digest)
        return manifest.descriptor.media_type, manifest.body

    @contextlib.contextmanager
    def open_blob(self, digest: str, size: int | None) -> Iterator[VerifyingReader]:
        with self.client.open_blob(self.repository, digest, size) as blob:
            yield blob

    def platform_image(self, top: Manifest, platform: Platform) -> PlatformImage:
        """The image itself, or the index's child for `platform` (spec §2.4)."""
        image, document = top, self.document(top)
        if isinstance(document, Index):
            child = select_child(document, platform)
            if child is None:
                raise UnsupportedMedia(
                    f"no child with platform {platform} in index "
                    f"{self.repository}@{top.descriptor.digest}"
                )
            image = self.manifest(child.digest)
            document = self.document(image)
            if isinstance(document, Index):
                raise UnsupportedMedia(
                    f"the child for platform {platform} of index "
                    f"{self.repository}@{top.descriptor.digest} is an index itself"
                )
        config = document.config
        return PlatformImage(
            digest=image.descriptor.digest,
            media_type=image.descriptor.media_type,
            manifest=document,
            config_digest=config.digest,
            config_size=config.size,
            config=self._config(config),
            layers=tuple(
                Layer(layer.digest, layer.size, layer.media_type) for layer in document.layer_list
            ),
        )

    def _config(self, descriptor: Descriptor) -> ImageConfig:
        """The config blob, read whole only when its declared size is within the limit.

        The reader fails as soon as the blob runs past the declared size, so neither a lying
        size nor an endless answer is ever held beyond `MAX_DOCUMENT_BYTES` and one chunk.
        """
        what = f"image config {self.repository}@{descriptor.digest}"
        if descriptor.size > MAX_DOCUMENT_BYTES:
            raise too_large(what, descriptor.size)
        with self.open_blob(descriptor.digest, descriptor.size) as blob:
            body = blob.read()
        return parse_image_config(body, what)


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
    layer: Layer,
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


def _spool_layer(source: ImageSource, layer: Layer, spool: Path, progress: Progress) -> Path:
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

"""The OCI image layout, both ways: written for `in`'s `oci-layout`, read back for `out`.

Writing (`write_oci_layout`, spec §6.3): an index is kept verbatim as `index.json` with every
child below it as blobs; a single image is wrapped in a generated index and marked with
`single-image-digest`. Nothing here talks to a registry: blobs arrive through a `BlobOpener`
(the caller binds `RegistryClient.open_blob` to a repository) and child manifests through a
fetch callable. Blobs are streamed to disk, each checked against its digest and size before it
is renamed into place.

Reading (`load_layout`, spec §6.6.2): only `index.json` must exist. While the index holds
exactly one entry and that entry is an index itself (`docker buildx --output type=oci` nests
them), the child is taken instead. With a `single-image-digest` file (what `in` writes for a
single image) that image is pushed as a plain image manifest; otherwise the (unwrapped) index,
verbatim, with every child below it (children first). The top `index.json` always goes out as
an OCI index, whatever its own `mediaType` says; everything else carries the media type its
parent's descriptor declares. Every blob file is checked against its descriptor's size (its
digest is the registry's to check on upload) before anything is pushed. Non-distributable
(foreign) layers are not pushed, as the Go original skips them too. `single-image-digest` is
parsed strictly, like Go's `v1.NewHash`: exactly `sha256:<64 lower-case hex digits>`; a
trailing newline or space is refused.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeAlias

from regwatch.errors import DigestMismatch, ImageError, UnsupportedMedia
from regwatch.gojson import marshal
from regwatch.image import mediatypes as mt
from regwatch.image.concurrently import download_all, stream_blob
from regwatch.image.digests import BlobOpener, check_digest, digest_of
from regwatch.image.documents import parse_image_manifest, parse_index
from regwatch.image.files import atomic_file, file_opener, open_regular, read_document, regular_size
from regwatch.image.mediatypes import declared_media_type
from regwatch.image.model import Descriptor
from regwatch.image.pushes import BlobSource, LoadedImage, ManifestToPush

OCI_LAYOUT_CONTENT = b'{\n    "imageLayoutVersion": "1.0.0"\n}'
"""The `oci-layout` file exactly as the Go original writes it (no final newline)."""

DEFAULT_CONCURRENCY = 4

ManifestFetcher: TypeAlias = Callable[[str], tuple[str, bytes]]
"""`fetch_manifest(digest)` -> (media type, bytes) of a child manifest."""

SINGLE_IMAGE_DIGEST = "single-image-digest"

MAX_INDEX_DEPTH = 16

_MARKER_PATTERN = re.compile(rb"sha256:[0-9a-f]{64}")


# -- writing ------------------------------------------------------------------------------------


class _Plan:
    """Everything a layout will hold, gathered before the first byte is written."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.manifests: dict[str, bytes] = {}
        self.blobs: dict[str, Descriptor] = {}

    def add_blob(self, blob: Descriptor) -> None:
        known = self.blobs.setdefault(blob.digest, blob)
        if known.size != blob.size:
            raise DigestMismatch(
                f"{self.what}: blob {blob.digest} is described with sizes {known.size} "
                f"and {blob.size}"
            )


def write_oci_layout(
    directory: Path,
    *,
    digest: str,
    media_type: str,
    manifest_bytes: bytes,
    fetch_manifest: ManifestFetcher,
    open_blob: BlobOpener,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> None:
    """Write the image or index `digest` as an OCI image layout in `directory`.

    An index (OCI or Docker list) becomes `index.json` verbatim, every child manifest (nested
    indexes too) a blob with its config and layers. A single image manifest becomes a blob,
    wrapped by a generated `index.json`, and `single-image-digest` names it. All manifests
    are fetched and checked before anything is written; blobs are downloaded up to
    `concurrency` at a time, each written under a temporary name and renamed once verified.
    `index.json` is written last, so a layout without it is an incomplete one.
    """
    what = f"write oci layout of {digest}"
    _check_manifest_bytes(digest, manifest_bytes, None, what)
    plan = _Plan(what)
    if mt.is_index(media_type):
        _plan_index(plan, manifest_bytes, digest, fetch_manifest)
        index_json, single_image = manifest_bytes, None
    elif media_type in mt.IMAGE_MEDIA_TYPES:
        plan.manifests[digest] = manifest_bytes
        _plan_image(plan, manifest_bytes, digest)
        index_json = marshal(
            {
                "schemaVersion": 2,
                "mediaType": mt.OCI_INDEX,
                "manifests": [
                    {"mediaType": media_type, "size": len(manifest_bytes), "digest": digest}
                ],
            }
        )
        single_image = digest.encode()
    else:
        raise UnsupportedMedia(f"{what}: unsupported manifest media type {media_type!r}")

    directory.mkdir(parents=True, exist_ok=True)
    _write_file(directory / "oci-layout", OCI_LAYOUT_CONTENT)
    for manifest_digest, body in plan.manifests.items():
        _write_file(_blob_target(directory, manifest_digest), body)
    pending = [blob for digest, blob in plan.blobs.items() if digest not in plan.manifests]
    _download_blobs(directory, pending, open_blob, concurrency, what)
    if single_image is not None:
        _write_file(directory / "single-image-digest", single_image)
    _write_file(directory / "index.json", index_json)


def _plan_index(plan: _Plan, body: bytes, digest: str, fetch_manifest: ManifestFetcher) -> None:
    document = parse_index(body, f"index {digest}")
    for child in document.manifests:
        if child.digest in plan.manifests:
            continue
        fetched_type, child_body = fetch_manifest(child.digest)
        _check_manifest_bytes(child.digest, child_body, child.size, plan.what)
        plan.manifests[child.digest] = child_body
        kind = _manifest_kind(fetched_type, child.media_type, child_body)
        if kind is None:
            raise UnsupportedMedia(
                f"{plan.what}: child manifest {child.digest} has unsupported media type "
                f"{fetched_type!r}"
            )
        if mt.is_index(kind):
            _plan_index(plan, child_body, child.digest, fetch_manifest)
        else:
            _plan_image(plan, child_body, child.digest)


def _plan_image(plan: _Plan, body: bytes, digest: str) -> None:
    document = parse_image_manifest(body, f"manifest {digest}")
    for blob in (document.config, *document.layers):
        plan.add_blob(blob)


def _manifest_kind(fetched_type: str, descriptor_type: str, body: bytes) -> str | None:
    """The manifest media type to go by: the registry's, else the descriptor's or the body's."""
    for candidate in (fetched_type, descriptor_type, declared_media_type(body)):
        if candidate in mt.LAYOUT_MANIFEST_TYPES:
            return candidate
    return None


def _download_blobs(
    directory: Path,
    blobs: Iterable[Descriptor],
    open_blob: BlobOpener,
    concurrency: int,
    what: str,
) -> None:
    downloads = [
        functools.partial(_download_blob, directory, blob, open_blob, what) for blob in blobs
    ]
    download_all(downloads, concurrency, "regwatch-oci-blob")


def _download_blob(
    directory: Path,
    blob: Descriptor,
    open_blob: BlobOpener,
    what: str,
    stop: threading.Event | None,
) -> None:
    with atomic_file(_blob_target(directory, blob.digest)) as file:
        stream_blob(open_blob, blob, file.write, what, stop)


def _blob_target(directory: Path, digest: str) -> Path:
    """`blobs/<algorithm>/<hex>`, its directory created (0777 & umask)."""
    algorithm, _, hex_digest = digest.partition(":")
    blobs = directory / "blobs" / algorithm
    blobs.mkdir(parents=True, exist_ok=True)
    return blobs / hex_digest


def _write_file(path: Path, data: bytes) -> None:
    with atomic_file(path) as file:
        file.write(data)


def _check_manifest_bytes(digest: str, body: bytes, size: int | None, what: str) -> None:
    check_digest(digest, what)
    actual = digest_of(body, digest.partition(":")[0])
    if actual != digest:
        raise DigestMismatch(f"{what}: manifest {digest} has digest {actual}")
    if size is not None and size != len(body):
        raise DigestMismatch(f"{what}: manifest {digest} has {len(body)} bytes, expected {size}")


# -- reading ------------------------------------------------------------------------------------


def load_layout(path: Path) -> LoadedImage:
    """What the layout in directory `path` pushes, every blob file checked against its size."""
    return _Layout(path).load()


class _Layout:
    """One load of an OCI image layout: what it pushes, gathered and verified."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs: dict[str, BlobSource] = {}
        self.manifests: list[ManifestToPush] = []
        self.pushed: set[str] = set()

    def load(self) -> LoadedImage:
        index_path = self.root / "index.json"
        body = read_document(index_path, "index.json", None)
        top = ManifestToPush(digest_of(body), mt.OCI_INDEX, body)
        entries = parse_index(body, "index.json", sender=None).manifests
        # `docker buildx --output type=oci` wraps the real index in one more.
        while len(entries) == 1 and mt.is_index(entries[0].media_type):
            child = entries[0]
            body = self.manifest_body(child)
            top = ManifestToPush(child.digest, child.media_type, body)
            entries = parse_index(body, f"index {child.digest}", sender=None).manifests

        marker = self.root / SINGLE_IMAGE_DIGEST
        if os.path.lexists(marker):
            digest = _read_marker(marker)
            chosen = next((e for e in entries if e.digest == digest), None)
            if chosen is None:
                raise ImageError(f"{SINGLE_IMAGE_DIGEST}: {digest} is not listed in the index")
            if chosen.media_type not in mt.IMAGE_MEDIA_TYPES:
                raise ImageError(
                    f"{SINGLE_IMAGE_DIGEST}: {digest} is listed with media type "
                    f"{chosen.media_type!r}, not an image manifest"
                )
            top = self.image(chosen)
        else:
            self.children(entries, top.digest, 1)
            self.add_manifest(top)
        return LoadedImage(tuple(self.blobs.values()), tuple(self.manifests), top)

    def children(self, entries: tuple[Descriptor, ...], parent: str, depth: int) -> None:
        if depth > MAX_INDEX_DEPTH:
            raise ImageError(f"index {parent}: indexes are nested too deeply")
        for entry in entries:
            if entry.digest in self.pushed:
                continue
            if entry.media_type in mt.IMAGE_MEDIA_TYPES:
                self.image(entry)
            elif mt.is_index(entry.media_type):
                body = self.manifest_body(entry)
                document = parse_index(body, f"index {entry.digest}", sender=None)
                self.children(document.manifests, entry.digest, depth + 1)
                self.add_manifest(ManifestToPush(entry.digest, entry.media_type, body))
            else:
                raise ImageError(
                    f"index {parent}: entry {entry.digest} has unsupported media type "
                    f"{entry.media_type!r}"
                )

    def image(self, descriptor: Descriptor) -> ManifestToPush:
        body = self.manifest_body(descriptor)
        document = parse_image_manifest(body, f"manifest {descriptor.digest}", sender=None)
        self.add_blob(document.config)
        for layer in document.layers:
            if layer.media_type not in mt.NON_DISTRIBUTABLE_LAYER_TYPES:
                self.add_blob(layer)
        manifest = ManifestToPush(descriptor.digest, descriptor.media_type, body)
        self.add_manifest(manifest)
        return manifest

    def add_manifest(self, manifest: ManifestToPush) -> None:
        if manifest.digest not in self.pushed:
            self.pushed.add(manifest.digest)
            self.manifests.append(manifest)

    def add_blob(self, descriptor: Descriptor) -> None:
        known = self.blobs.get(descriptor.digest)
        if known is not None:
            if known.descriptor.size != descriptor.size:
                raise ImageError(
                    f"blob {descriptor.digest} is described with sizes {known.descriptor.size} "
                    f"and {descriptor.size}"
                )
            return
        path = self.blob_path(descriptor)
        _check_size(path, descriptor)
        # Not hashed here: a blob the registry already has is never read, and one that is
        # uploaded is checked by the registry against its digest before any tag can move.
        self.blobs[descriptor.digest] = BlobSource(descriptor, file_opener(path))

    def manifest_body(self, descriptor: Descriptor) -> bytes:
        path = self.blob_path(descriptor)
        _check_size(path, descriptor)
        body = read_document(path, f"blob {descriptor.digest}", descriptor.size)
        actual = digest_of(body, descriptor.digest.partition(":")[0])
        if actual != descriptor.digest:
            raise ImageError(f"blob {descriptor.digest}: content has digest {actual}")
        return body

    def blob_path(self, descriptor: Descriptor) -> Path:
        algorithm, _, hex_digest = descriptor.digest.partition(":")
        return self.root / "blobs" / algorithm / hex_digest


def _check_size(path: Path, descriptor: Descriptor) -> None:
    what = f"blob {descriptor.digest}"
    actual = regular_size(path, what)
    if actual != descriptor.size:
        raise ImageError(f"{what} has {actual} bytes, its descriptor says {descriptor.size}")


def _read_marker(path: Path) -> str:
    try:
        with open_regular(path) as file:
            content = file.read(256)
    except OSError as exc:
        raise ImageError(f"{SINGLE_IMAGE_DIGEST}: {exc.strerror or exc}") from None
    if not _MARKER_PATTERN.fullmatch(content):
        raise ImageError(
            f"{SINGLE_IMAGE_DIGEST}: invalid digest {content!r}: want exactly "
            "sha256:<64 lower-case hex digits>"
        )
    return content.decode()

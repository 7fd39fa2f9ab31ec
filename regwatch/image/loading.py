"""Loading what `out` pushes from a path: an OCI image layout or a `docker save` tarball.

`load_image(path)` (resource spec §6.6.2) turns a directory into the image or index of an OCI
image layout and a file into the one image of a `docker save`-style tarball. Nothing big is
read into memory: manifests and configs are, layers never. Each blob comes as a `BlobSource`
whose `open()` gives a fresh reader of exactly its bytes, as often as an upload is retried.

Layout (directory)
  Only `index.json` must exist. While the index holds exactly one entry and that entry is an
  index itself (`docker buildx --output type=oci` nests them), the child is taken instead.
  With a `single-image-digest` file (what `in` writes for a single image) that image is
  pushed as a plain image manifest; otherwise the (unwrapped) index, verbatim, with every
  child below it (children first). The top `index.json` always goes out as an OCI index,
  whatever its own `mediaType` says; everything else carries the media type its parent's
  descriptor declares. Every blob file is checked against its descriptor's size and digest
  (streamed) before anything is pushed. Non-distributable (foreign) layers are not pushed,
  as the Go original skips them too.

  `single-image-digest` is parsed strictly, like Go's `v1.NewHash`: exactly
  `sha256:<64 lower-case hex digits>`; a trailing newline or space is refused.

Tarball (file)
  `manifest.json` must list exactly one image; its config and layers are looked up by entry
  name (symbolic and hard links followed). The Docker schema-2 manifest is rebuilt in the
  exact byte layout of go-containerregistry's `tarball.Image`, so its digest matches the Go
  original's (quirk Q15). The first layer's magic bytes decide: compressed (gzip or zstd)
  layers are pushed as stored, all labelled as Docker gzip layers (zstd too: a quirk kept for
  parity), streamed straight out of the tarball; uncompressed layers are gzipped once into a
  temporary directory (removed by `LoadedImage.close()`), because the manifest needs the
  compressed digest and size before any upload. They are compressed at level 1, the level
  go-containerregistry uses (`gzip.BestSpeed`), with the same gzip header (no name, mtime 0,
  OS unknown), but zlib's deflate stream is not Go's: the digests of such layers, and so of
  the manifest, differ from what the Go original would push. Compressed layers, the common
  case, keep full digest parity.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import weakref
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, TypeAlias

from regwatch.errors import ConfigError, ImageError
from regwatch.gojson import marshal
from regwatch.image import mediatypes as mt
from regwatch.image.compression import GZIP_MAGIC, ZSTD_MAGIC
from regwatch.image.digests import digest_of
from regwatch.image.documents import (
    Descriptor,
    load_json,
    parse_image_manifest,
    parse_index,
)

SINGLE_IMAGE_DIGEST = "single-image-digest"
TARBALL_SINGLE_IMAGE = "tarball must contain only a single image to be used with tarball.Image"

GZIP_LEVEL = 1
"""go-containerregistry gzips uncompressed layers with `gzip.BestSpeed`."""

MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
"""A manifest, index, config or `manifest.json` larger than this is refused, not read."""

MAX_INDEX_DEPTH = 16
MAX_LINK_HOPS = 32

_CHUNK_SIZE = 1 << 20
_MARKER_PATTERN = re.compile(rb"sha256:[0-9a-f]{64}")

Opener: TypeAlias = Callable[[], AbstractContextManager[BinaryIO]]


@dataclass(frozen=True)
class BlobSource:
    """One blob to upload; `open()` returns a new reader of exactly these bytes on each call."""

    digest: str
    size: int
    media_type: str
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


def load_image(path: Path) -> LoadedImage:
    """A directory is an OCI image layout; a file is a `docker save` tarball (spec §6.6.2).

    Raises `ConfigError` when nothing is at `path` or it is neither a directory nor a regular
    file (a FIFO would block the read), `ImageError` when its content cannot be pushed; layout
    errors read `loading <path> as OCI layout: …`. Only regular files are ever opened.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file or directory") from None
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        try:
            return _Layout(path).load()
        except ImageError as exc:
            raise ImageError(f"loading {path} as OCI layout: {exc}") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{path}: {_file_kind(mode)}, not a tarball or an OCI layout directory")
    try:
        return _load_tarball(path)
    except OSError as exc:
        raise ImageError(f"reading {path}: {exc.strerror or exc}") from None


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# -- docker save tarball ------------------------------------------------------------------------


def _load_tarball(path: Path) -> LoadedImage:
    tar = _Tar(path)
    manifest_json = load_json(tar.read(tar.resolve("manifest.json")), "manifest.json")
    if manifest_json is None:
        raise ImageError("no valid manifest.json in tarball")
    if not isinstance(manifest_json, list):
        raise ImageError("manifest.json: not a list of images")
    if len(manifest_json) != 1:
        raise ImageError(TARBALL_SINGLE_IMAGE)
    entry = manifest_json[0]
    if not isinstance(entry, dict):
        raise ImageError("manifest.json: the image entry is not an object")
    config_name = _go_field(entry, "Config")
    layer_names = _go_field(entry, "Layers") or []
    if not isinstance(config_name, str):
        raise ImageError("manifest.json: the image has no Config file name")
    if not isinstance(layer_names, list) or not all(isinstance(n, str) for n in layer_names):
        raise ImageError("manifest.json: Layers is not a list of file names")

    config = tar.read(tar.resolve(config_name))
    layers = [tar.resolve(name) for name in layer_names]
    config_blob = BlobSource(
        digest_of(config), len(config), mt.DOCKER_CONFIG, lambda: io.BytesIO(config)
    )
    scratch: Path | None = None
    if not layers:
        layer_blobs: list[BlobSource] = []
    elif _is_compressed(tar.head(layers[0], len(ZSTD_MAGIC))):
        layer_blobs = _stored_layers(tar, layers)
    else:
        scratch = Path(tempfile.mkdtemp(prefix="regwatch-layers-"))
        try:
            layer_blobs = _gzip_layers(tar, layers, scratch)
        except BaseException:
            _remove_tree(scratch)
            raise

    manifest = marshal(
        {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST_V2,
            "config": _go_descriptor(config_blob),
            "layers": [_go_descriptor(blob) for blob in layer_blobs],
        }
    )
    top = ManifestToPush(digest_of(manifest), mt.DOCKER_MANIFEST_V2, manifest)
    blobs: dict[str, BlobSource] = {}
    for blob in (config_blob, *layer_blobs):
        blobs.setdefault(blob.digest, blob)
    return LoadedImage(tuple(blobs.values()), (top,), top, scratch)


def _go_field(entry: Mapping[str, Any], name: str) -> Any:
    """A key as Go's `encoding/json` finds it: exact match first, else case-insensitive."""
    if name in entry:
        return entry[name]
    folded = name.casefold()
    return next((value for key, value in entry.items() if key.casefold() == folded), None)


def _go_descriptor(blob: BlobSource) -> dict[str, object]:
    """A descriptor in go-containerregistry's `v1.Descriptor` field order."""
    return {"mediaType": blob.media_type, "size": blob.size, "digest": blob.digest}


def _is_compressed(head: bytes) -> bool:
    return head.startswith((GZIP_MAGIC, ZSTD_MAGIC))


def _stored_layers(tar: _Tar, layers: list[tarfile.TarInfo]) -> list[BlobSource]:
    """Each layer as stored in the tarball, hashed once; an entry listed twice is hashed once."""
    made: dict[int, BlobSource] = {}
    blobs: list[BlobSource] = []
    for member in layers:
        blob = made.get(member.offset_data)
        if blob is None:
            blob = made[member.offset_data] = tar.blob(member)
        blobs.append(blob)
    return blobs


def _gzip_layers(tar: _Tar, layers: list[tarfile.TarInfo], scratch: Path) -> list[BlobSource]:
    """Gzip each layer once into `scratch`, hashing while writing; a repeated entry once."""
    made: dict[int, BlobSource] = {}
    blobs: list[BlobSource] = []
    for number, member in enumerate(layers):
        blob = made.get(member.offset_data)
        if blob is None:
            target = scratch / f"layer-{number}.tar.gz"
            with tar.open_member(member) as source:
                digest, size = _gzip_file(source, target)
            blob = BlobSource(digest, size, mt.DOCKER_LAYER_GZIP, _file_opener(target))
            made[member.offset_data] = blob
        blobs.append(blob)
    return blobs


def _gzip_file(source: BinaryIO, target: Path) -> tuple[str, int]:
    with target.open("xb") as file:
        sink = _HashingWriter(file)
        # No file name in the header, mtime 0, and for level 1 XFL 4 and OS 255: the header
        # Go's compress/gzip writes.
        with gzip.GzipFile(
            filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=sink, mtime=0
        ) as zipped:
            shutil.copyfileobj(source, zipped, _CHUNK_SIZE)
    return f"sha256:{sink.hash.hexdigest()}", sink.size


class _HashingWriter:
    """Writes through to a file, hashing and counting the bytes on the way."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self.hash.update(data)
        self.size += len(data)
        self._file.write(data)
        return len(data)

    def flush(self) -> None:
        self._file.flush()


class _Tar:
    """The entries of a tar file by normalised name (the first of a name wins, as in Go).

    Only the headers are read here; member data is read later by offset, so a layer streams
    straight out of the tarball without a copy.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.members: dict[str, tarfile.TarInfo] = {}
        try:
            with _open_regular(path) as file, tarfile.open(fileobj=file, mode="r:") as tar:
                for member in tar:
                    self.members.setdefault(_normalise(member.name), member)
        except (tarfile.TarError, OSError) as exc:
            raise ImageError(f"reading {path} as a tarball: {exc}") from None

    def resolve(self, name: str) -> tarfile.TarInfo:
        """The regular file entry `name` names, through symbolic and hard links."""
        wanted = _normalise(name)
        for _ in range(MAX_LINK_HOPS):
            member = self.members.get(wanted)
            if member is None:
                raise ImageError(f"file {wanted} not found in tar")
            if member.issym():
                wanted = _normalise(posixpath.join(posixpath.dirname(wanted), member.linkname))
            elif member.islnk():
                # A hard link names its target from the archive root; Go resolves it like a
                # symbolic link, from the linking entry's directory: accept either.
                target = _normalise(member.linkname)
                if target not in self.members:
                    target = _normalise(posixpath.join(posixpath.dirname(wanted), target))
                wanted = target
            elif not member.isreg() or member.issparse():
                raise ImageError(f"{wanted} in tar is not a regular file")
            else:
                return member
        raise ImageError(f"file {name} in tar: too many levels of links")

    def open_member(self, member: tarfile.TarInfo) -> io.BufferedReader:
        return io.BufferedReader(
            _FileSlice(self.path, member.offset_data, member.size), _CHUNK_SIZE
        )

    def read(self, member: tarfile.TarInfo) -> bytes:
        if member.size > MAX_DOCUMENT_BYTES:
            raise ImageError(f"{member.name} in tar is too big ({member.size} bytes)")
        with self.open_member(member) as reader:
            return reader.read()

    def head(self, member: tarfile.TarInfo, size: int) -> bytes:
        with io.BufferedReader(
            _FileSlice(self.path, member.offset_data, min(size, member.size))
        ) as reader:
            return reader.read()

    def blob(self, member: tarfile.TarInfo) -> BlobSource:
        """The entry as it is stored, hashed once while streaming."""
        with self.open_member(member) as reader:
            digest = f"sha256:{hashlib.file_digest(reader, 'sha256').hexdigest()}"
        path, offset, size = self.path, member.offset_data, member.size

        def open_slice() -> BinaryIO:
            return io.BufferedReader(_FileSlice(path, offset, size), _CHUNK_SIZE)

        return BlobSource(digest, size, mt.DOCKER_LAYER_GZIP, open_slice)


def _normalise(name: str) -> str:
    """`./a/../b/` and `b` are the same entry: resolve dots, drop leading and trailing `/`."""
    return posixpath.normpath("/" + name).lstrip("/")


class _FileSlice(io.RawIOBase):
    """The bytes `[offset, offset + size)` of a file, read-only; a short file is an error."""

    def __init__(self, path: Path, offset: int, size: int) -> None:
        super().__init__()
        self._path = path
        self._left = size
        self._file = _open_regular(path)
        try:
            self._file.seek(offset)
        except BaseException:
            self._file.close()
            raise

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any, /) -> int:  # any writable buffer
        with memoryview(buffer) as raw, raw.cast("B") as view:
            wanted = min(len(view), self._left)
            if wanted == 0:
                return 0
            with view[:wanted] as window:
                got = self._file.readinto(window)
        if not got:
            raise ImageError(f"{self._path} ends early: was it changed while in use?")
        self._left -= got
        return got

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


# -- OCI image layout ---------------------------------------------------------------------------


class _Layout:
    """One load of an OCI image layout: what it pushes, gathered and verified."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs: dict[str, BlobSource] = {}
        self.manifests: list[ManifestToPush] = []
        self.pushed: set[str] = set()

    def load(self) -> LoadedImage:
        index_path = self.root / "index.json"
        body = _read_document(index_path, "index.json", None)
        top = ManifestToPush(digest_of(body), mt.OCI_INDEX, body)
        entries = parse_index(body, "index.json", sender=None).entries
        # `docker buildx --output type=oci` wraps the real index in one more.
        while len(entries) == 1 and mt.is_index(entries[0].media_type):
            child = entries[0]
            body = self.manifest_body(child)
            top = ManifestToPush(child.digest, child.media_type, body)
            entries = parse_index(body, f"index {child.digest}", sender=None).entries

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
                self.children(document.entries, entry.digest, depth + 1)
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
        for layer in document.layer_list:
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
            if known.size != descriptor.size:
                raise ImageError(
                    f"blob {descriptor.digest} is described with sizes {known.size} "
                    f"and {descriptor.size}"
                )
            return
        path = self.blob_path(descriptor)
        _check_size(path, descriptor)
        # Not hashed here: a blob the registry already has is never read, and one that is
        # uploaded is checked by the registry against its digest before any tag can move.
        self.blobs[descriptor.digest] = BlobSource(
            descriptor.digest, descriptor.size, descriptor.media_type, _file_opener(path)
        )

    def manifest_body(self, descriptor: Descriptor) -> bytes:
        path = self.blob_path(descriptor)
        _check_size(path, descriptor)
        body = _read_document(path, f"blob {descriptor.digest}", descriptor.size)
        actual = digest_of(body, descriptor.digest.partition(":")[0])
        if actual != descriptor.digest:
            raise ImageError(f"blob {descriptor.digest}: content has digest {actual}")
        return body

    def blob_path(self, descriptor: Descriptor) -> Path:
        algorithm, _, hex_digest = descriptor.digest.partition(":")
        return self.root / "blobs" / algorithm / hex_digest


def _check_size(path: Path, descriptor: Descriptor) -> None:
    what = f"blob {descriptor.digest}"
    actual = _regular_size(path, what)
    if actual != descriptor.size:
        raise ImageError(f"{what} has {actual} bytes, its descriptor says {descriptor.size}")


def _read_document(path: Path, what: str, size: int | None) -> bytes:
    """A small JSON file; too big for a manifest is refused before it is read."""
    actual = _regular_size(path, what) if size is None else size
    if actual > MAX_DOCUMENT_BYTES:
        raise ImageError(f"{what} is too big ({actual} bytes)")
    try:
        with _open_regular(path) as file:
            return file.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise ImageError(f"{what}: {path}: {exc.strerror or exc}") from None


def _regular_size(path: Path, what: str) -> int:
    """The size of a regular file; anything else (a FIFO, a device, a socket) is refused."""
    try:
        status = path.stat()
    except OSError as exc:
        reason = "no such file" if isinstance(exc, FileNotFoundError) else exc.strerror or exc
        raise ImageError(f"{what}: {path}: {reason}") from None
    if not stat.S_ISREG(status.st_mode):
        raise ImageError(f"{what}: {path}: {_file_kind(status.st_mode)}, not a regular file")
    return status.st_size


def _read_marker(path: Path) -> str:
    try:
        with _open_regular(path) as file:
            content = file.read(256)
    except OSError as exc:
        raise ImageError(f"{SINGLE_IMAGE_DIGEST}: {exc.strerror or exc}") from None
    if not _MARKER_PATTERN.fullmatch(content):
        raise ImageError(
            f"{SINGLE_IMAGE_DIGEST}: invalid digest {content!r}: want exactly "
            "sha256:<64 lower-case hex digits>"
        )
    return content.decode()


# -- shared -------------------------------------------------------------------------------------


def _file_opener(path: Path) -> Opener:
    def open_file() -> BinaryIO:
        return _open_regular(path)

    return open_file


def _open_regular(path: Path) -> io.BufferedReader:
    """Open a regular file for reading; anything else is refused without blocking on it.

    `O_NONBLOCK` makes opening a FIFO return at once instead of waiting for a writer; the
    check then happens on what was actually opened, not on an earlier `stat`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        _regular_size(path, str(path.name))  # a socket cannot be opened: say what it is
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ImageError(f"{path}: {_file_kind(mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a directory"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")

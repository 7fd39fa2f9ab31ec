"""The `docker save` tarball, both ways: `image.tar` written for `in`, read back for `out`.

Writing (`write_image_tarball`, spec §6.3): the config blob, each layer as downloaded (still
compressed), then `manifest.json`. Blobs arrive through a `BlobOpener` and stream to disk,
each checked against its digest and size before the file is renamed into place. The config is
stored verbatim: loading it back keeps the config digest, and with it digest parity with the
Go original (quirk Q15).

Reading (`load_tarball`, spec §6.6.2): `manifest.json` must list exactly one image; its config
and layers are looked up by entry name (symbolic and hard links followed). The Docker schema-2
manifest is rebuilt in the exact byte layout of go-containerregistry's `tarball.Image`, so its
digest matches the Go original's (quirk Q15). The first layer's magic bytes decide: compressed
(gzip or zstd) layers are pushed as stored, all labelled as Docker gzip layers (zstd too: a
quirk kept for parity), streamed straight out of the tarball; uncompressed layers are gzipped
once into a temporary directory (removed by `LoadedImage.close()`), because the manifest needs
the compressed digest and size before any upload. They are compressed at level 1, the level
go-containerregistry uses (`gzip.BestSpeed`), with the same gzip header (no name, mtime 0, OS
unknown), but zlib's deflate stream is not Go's: the digests of such layers, and so of the
manifest, differ from what the Go original would push. Compressed layers, the common case,
keep full digest parity. Nothing big is read into memory: manifests and configs are, layers
never.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import posixpath
import shutil
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from regwatch.errors import ImageError
from regwatch.gojson import marshal
from regwatch.image import mediatypes as mt
from regwatch.image.compression import GZIP_MAGIC, ZSTD_MAGIC
from regwatch.image.concurrently import download_all, stream_blob
from regwatch.image.digests import (
    BlobOpener,
    check_descriptor,
    check_digest,
    digest_of,
)
from regwatch.image.documents import load_json
from regwatch.image.files import (
    MAX_LOCAL_DOCUMENT_BYTES,
    atomic_file,
    file_opener,
    open_regular,
    write_all,
)
from regwatch.image.model import Descriptor
from regwatch.image.pushes import BlobSource, LoadedImage, ManifestToPush

TARBALL_SINGLE_IMAGE = "tarball must contain only a single image to be used with tarball.Image"

GZIP_LEVEL = 1
"""go-containerregistry gzips uncompressed layers with `gzip.BestSpeed`."""

MAX_LINK_HOPS = 32

_CHUNK_SIZE = 1 << 20

DOWNLOADS = 4
"""Blobs of one `image.tar` downloading at once: hashing and writing share the two cores."""


# -- writing ------------------------------------------------------------------------------------


def layer_file_name(digest: str, media_type: str) -> str:
    """The name of a layer inside `image.tar`: its hex digest plus an extension by media type."""
    check_digest(digest, "name layer file")
    hex_digest = digest.partition(":")[2]
    if media_type == mt.OCI_LAYER_ZSTD:
        return f"{hex_digest}.tar.zst"
    if media_type in (mt.OCI_LAYER_TAR, mt.DOCKER_LAYER_TAR):
        return f"{hex_digest}.tar"
    return f"{hex_digest}.tar.gz"


def write_image_tarball(
    path: Path,
    *,
    config: Descriptor,
    layers: Sequence[Descriptor],
    repo_tag: str,
    open_blob: BlobOpener,
    concurrency: int = DOWNLOADS,
) -> None:
    """Write a `docker save`-style tarball of one image to `path`, all or nothing.

    `layers` are the image's, in manifest order; `repo_tag` is
    `<canonical repository>:<tag>`. Blobs download `concurrency` at a time. The tarball
    appears at `path` only once every blob has been verified; on any failure nothing is left
    behind.
    """
    what = f"write {path.name}"
    check_descriptor(config, f"{what}: config")
    for layer in layers:
        check_descriptor(layer, f"{what}: layer")
    names = [layer_file_name(layer.digest, layer.media_type) for layer in layers]
    manifest = [{"Config": config.digest, "RepoTags": [repo_tag], "Layers": names}]
    manifest_bytes = marshal(manifest)

    entries = {config.digest: config}
    for layer, name in zip(layers, names, strict=True):
        entries.setdefault(name, layer)
    # Every size is known, so is every entry's place: the file is laid out first (headers,
    # the manifest, zeros for padding and the end), then blobs download side by side, each
    # written at its offset. The bytes are those `tarfile` writes for the same entries.
    offset = 0
    headers: list[tuple[int, bytes]] = []
    places: list[tuple[Descriptor, int]] = []
    for name, blob in entries.items():
        header = _header(name, blob.size)
        headers.append((offset, header))
        places.append((blob, offset + len(header)))
        offset += len(header) + _padded(blob.size)
    manifest_header = _header("manifest.json", len(manifest_bytes))
    headers.append((offset, manifest_header + manifest_bytes))
    offset += len(manifest_header) + _padded(len(manifest_bytes))
    end = _padded(offset + 2 * tarfile.BLOCKSIZE, tarfile.RECORDSIZE)

    with atomic_file(path) as file:
        fd = file.fileno()
        os.ftruncate(fd, end)
        for at, data in headers:
            write_all(fd, data, at)
        downloads = [
            functools.partial(stream_blob, open_blob, blob, _WriterAt(fd, at).write, what)
            for blob, at in places
        ]
        download_all(downloads, concurrency, "regwatch-tar-blob")


class _WriterAt:
    """Writes one after another from an offset, with `pwrite`: threads share the descriptor."""

    def __init__(self, fd: int, at: int) -> None:
        self.fd = fd
        self.at = at

    def write(self, data: bytes) -> None:
        write_all(self.fd, data, self.at)
        self.at += len(data)


def _padded(size: int, unit: int = tarfile.BLOCKSIZE) -> int:
    return -(-size // unit) * unit


def _header(name: str, size: int) -> bytes:
    """The header block(s) `TarFile.addfile` writes for a regular file (PAX format)."""
    return _tar_entry(name, size).tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")


def _tar_entry(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.REGTYPE
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


# -- reading ------------------------------------------------------------------------------------


def load_tarball(path: Path) -> LoadedImage:
    """The one image of the tarball at `path`, as `out` pushes it."""
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
        Descriptor(mt.DOCKER_CONFIG, digest_of(config), len(config)), lambda: io.BytesIO(config)
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
            shutil.rmtree(scratch, ignore_errors=True)
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
        blobs.setdefault(blob.descriptor.digest, blob)
    return LoadedImage(tuple(blobs.values()), (top,), top, scratch)


def _go_field(entry: Mapping[str, Any], name: str) -> Any:
    """A key as Go's `encoding/json` finds it: exact match first, else case-insensitive."""
    if name in entry:
        return entry[name]
    folded = name.casefold()
    return next((value for key, value in entry.items() if key.casefold() == folded), None)


def _go_descriptor(blob: BlobSource) -> dict[str, object]:
    """A descriptor in go-containerregistry's `v1.Descriptor` field order."""
    descriptor = blob.descriptor
    return {
        "mediaType": descriptor.media_type,
        "size": descriptor.size,
        "digest": descriptor.digest,
    }


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
            blob = BlobSource(Descriptor(mt.DOCKER_LAYER_GZIP, digest, size), file_opener(target))
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
            with open_regular(path) as file, tarfile.open(fileobj=file, mode="r:") as tar:
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
        if member.size > MAX_LOCAL_DOCUMENT_BYTES:
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

        return BlobSource(Descriptor(mt.DOCKER_LAYER_GZIP, digest, size), open_slice)


def _normalise(name: str) -> str:
    """`./a/../b/` and `b` are the same entry: resolve dots, drop leading and trailing `/`."""
    return posixpath.normpath("/" + name).lstrip("/")


class _FileSlice(io.RawIOBase):
    """The bytes `[offset, offset + size)` of a file, read-only; a short file is an error."""

    def __init__(self, path: Path, offset: int, size: int) -> None:
        super().__init__()
        self._path = path
        self._left = size
        self._file = open_regular(path)
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

"""The suite's own tar writer, for layers real tools refuse to make (hostile names, devices).

It writes ustar headers by hand, with a pax header in front when a name or link target is too
long or a time has a fraction or an atime, so the reader under test (Python's `tarfile`) is
checked against bytes it did not write itself.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import zstandard

BLOCK = 512
EPOCH = 1_600_000_000  # 2020-09-13, the default mtime of every entry

Compression = Literal["gzip", "zstd", "none"]

# typeflags
FILE, HARDLINK, SYMLINK, CHAR, BLOCKDEV, DIR, FIFO = b"0", b"1", b"2", b"3", b"4", b"5", b"6"
GLOBAL_PAX = b"g"


@dataclass(frozen=True)
class Entry:
    name: str
    kind: bytes = FILE
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: float = EPOCH
    atime: float | None = None
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0


def file(
    name: str,
    data: bytes | str = b"",
    *,
    mode: int = 0o644,
    uid: int = 0,
    gid: int = 0,
    mtime: float = EPOCH,
    atime: float | None = None,
) -> Entry:
    body = data.encode() if isinstance(data, str) else data
    return Entry(name, FILE, body, mode, uid, gid, mtime, atime)


def directory(
    name: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0, mtime: float = EPOCH
) -> Entry:
    return Entry(name, DIR, b"", mode, uid, gid, mtime)


def symlink(name: str, target: str, *, uid: int = 0, gid: int = 0) -> Entry:
    return Entry(name, SYMLINK, mode=0o777, uid=uid, gid=gid, linkname=target)


def hardlink(name: str, target: str) -> Entry:
    return Entry(name, HARDLINK, linkname=target)


def whiteout(path: str) -> Entry:
    """`.wh.<base>` next to `path`: the layer deletes `path`."""
    parent, _, base = path.rpartition("/")
    return file(f"{parent}/.wh.{base}" if parent else f".wh.{base}")


def opaque(directory_name: str, *, uid: int = 0, gid: int = 0) -> Entry:
    """The marker that empties `directory_name` ("" for the root) before this layer fills it."""
    parent = directory_name.strip("/")
    return file(f"{parent}/.wh..wh..opq" if parent else ".wh..wh..opq", uid=uid, gid=gid)


def fifo(name: str, *, mode: int = 0o644) -> Entry:
    return Entry(name, FIFO, mode=mode)


def device(name: str, kind: bytes = CHAR, *, major: int = 1, minor: int = 3) -> Entry:
    return Entry(name, kind, mode=0o666, devmajor=major, devminor=minor)


def global_header(**records: str) -> Entry:
    """A pax global header: readers apply it or ignore it, it never becomes a file."""
    body = b"".join(_pax_record(key, value) for key, value in records.items())
    return Entry("pax_global_header", GLOBAL_PAX, body)


def odd(name: str, kind: bytes) -> Entry:
    """An entry of any typeflag, e.g. one no image may contain."""
    return Entry(name, kind)


def tar(entries: Iterable[Entry], *, end: bool = True) -> bytes:
    """A tar stream; `end=False` leaves out the two zero blocks that close an archive."""
    out = bytearray()
    for entry in entries:
        out += _entry(entry)
    if end:
        out += bytes(2 * BLOCK)
    return bytes(out)


def compress(data: bytes, compression: Compression) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor(write_checksum=True).compress(data)
    return data


def blob(entries: Iterable[Entry], compression: Compression = "gzip") -> bytes:
    return compress(tar(entries), compression)


def _entry(entry: Entry) -> bytes:
    name = entry.name.encode()
    linkname = entry.linkname.encode()
    pax: dict[str, str] = {}
    if len(name) > 100:
        pax["path"] = entry.name
    if len(linkname) > 100:
        pax["linkpath"] = entry.linkname
    if entry.mtime != int(entry.mtime) or entry.mtime < 0:
        pax["mtime"] = f"{entry.mtime:.9f}"
    if entry.atime is not None:
        pax["atime"] = f"{entry.atime:.9f}"
    out = bytearray()
    if pax:
        records = b"".join(_pax_record(key, value) for key, value in pax.items())
        out += _header(b"PaxHeader", 0o644, 0, 0, len(records), 0, b"x", b"", 0, 0)
        out += _padded(records)
    size = len(entry.data)
    out += _header(
        name[:100],
        entry.mode,
        entry.uid,
        entry.gid,
        size,
        max(int(entry.mtime), 0),
        entry.kind,
        linkname[:100],
        entry.devmajor,
        entry.devminor,
    )
    out += _padded(entry.data)
    return bytes(out)


def _pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode() + body


def _header(
    name: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    kind: bytes,
    linkname: bytes,
    devmajor: int,
    devminor: int,
) -> bytes:
    fields = [
        name.ljust(100, b"\0"),
        _octal(mode, 8),
        _octal(uid, 8),
        _octal(gid, 8),
        _octal(size, 12),
        _octal(mtime, 12),
        b" " * 8,  # the checksum counts its own field as spaces
        kind,
        linkname.ljust(100, b"\0"),
        b"ustar\x0000",
        b"root".ljust(32, b"\0"),
        b"root".ljust(32, b"\0"),
        _octal(devmajor, 8),
        _octal(devminor, 8),
        bytes(155 + 12),  # prefix (unused: long names go to pax) and padding
    ]
    header = bytearray(b"".join(fields))
    assert len(header) == BLOCK
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % BLOCK)

"""Digests, and the readers that verify digest and size while a blob's bytes stream past.

`VerifyingReader` is the one reader that checks: a registry download is one as it arrives, and
`verified` makes one of any other opened blob, so each blob is hashed exactly once.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol, TypeAlias

from regwatch.errors import DigestMismatch, ImageError
from regwatch.image.model import Descriptor
from regwatch.refs import is_digest

_CHUNK = 1024 * 1024
_ALGORITHMS = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{_ALGORITHMS[algorithm](data).hexdigest()}"


class _Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


class VerifyingReader:
    """Yields a blob's bytes, failing if they do not add up to the expected digest and size.

    The check on the digest happens when the stream ends, so a consumer must read to the end
    before trusting anything it wrote; a stream that runs past `size` fails at once.
    """

    def __init__(self, chunks: Iterable[bytes], digest: str, size: int | None, what: str) -> None:
        algorithm, _, _ = digest.partition(":")
        if algorithm not in _ALGORITHMS:
            raise DigestMismatch(f"{what}: unsupported digest algorithm {algorithm!r}")
        self._chunks = iter(chunks)
        self._hash: _Hash = _ALGORITHMS[algorithm]()
        self._algorithm = algorithm
        self.digest = digest
        self.size = size
        self.what = what
        self.bytes_read = 0
        self._buffer = b""
        self._offset = 0
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read1():
            yield chunk

    def read1(self) -> bytes:
        """The next chunk as it arrived (empty at the verified end)."""
        if self._offset < len(self._buffer):
            chunk = self._buffer[self._offset :]
            self._buffer, self._offset = b"", 0
            return chunk
        return self._next_chunk()

    def read(self, n: int = -1) -> bytes:
        """File-like read, so `tarfile` and decompressors can consume the stream directly.

        Small reads from large chunks advance an offset instead of re-slicing the remainder.
        """
        if n < 0:
            head = self.read1() if self._offset < len(self._buffer) else b""
            return b"".join([head, *iter(self._next_chunk, b"")])
        parts: list[bytes] = []
        wanted = n
        while wanted > 0:
            if self._offset >= len(self._buffer):
                self._buffer, self._offset = self._next_chunk(), 0
                if not self._buffer:
                    break
            piece = self._buffer[self._offset : self._offset + wanted]
            self._offset += len(piece)
            wanted -= len(piece)
            parts.append(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _next_chunk(self) -> bytes:
        if self._done:
            return b""
        for chunk in self._chunks:
            if not chunk:
                continue
            self.bytes_read += len(chunk)
            if self.size is not None and self.bytes_read > self.size:
                raise DigestMismatch(f"{self.what}: more than the expected {self.size} bytes")
            self._hash.update(chunk)
            return chunk
        self._done = True
        self._verify()
        return b""

    def _verify(self) -> None:
        if self.size is not None and self.bytes_read != self.size:
            raise DigestMismatch(f"{self.what}: got {self.bytes_read} bytes, expected {self.size}")
        actual = f"{self._algorithm}:{self._hash.hexdigest()}"
        if actual != self.digest:
            raise DigestMismatch(
                f"{self.what}: content has digest {actual}, expected {self.digest}"
            )


class BlobReader(Protocol):
    """What an opened blob must offer: `read(n)` returning at most n bytes, empty at the end."""

    def read(self, size: int, /) -> bytes: ...


BlobOpener: TypeAlias = Callable[[str, int | None], AbstractContextManager[BlobReader]]
"""`open_blob(digest, size)`: a context manager yielding a reader of that blob."""


def verified(source: BlobReader, digest: str, size: int, what: str) -> VerifyingReader:
    """`source` held to `digest` and `size` while it streams, whatever opened it.

    A registry download already verifies exactly these and is taken as it is: hashing it a
    second time (170 MB/s without SHA extensions) was a third of `in`'s CPU for `format: oci`.
    Anything else is read in chunks through a `VerifyingReader` of its own.
    """
    if isinstance(source, VerifyingReader) and source.digest == digest and source.size == size:
        return source
    return VerifyingReader(iter(functools.partial(source.read, _CHUNK), b""), digest, size, what)


def check_digest(digest: str, what: str) -> None:
    if not is_digest(digest):
        raise ImageError(f"{what}: invalid digest {digest!r}")


def check_descriptor(descriptor: Descriptor, what: str) -> None:
    """A descriptor built by hand (not parsed by `documents`) is checked before it names a file."""
    check_digest(descriptor.digest, what)
    size = descriptor.size
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ImageError(f"{what}: invalid size {size!r} for {descriptor.digest}")

"""Digests, and a reader that verifies digest and size while the bytes stream past."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Protocol

from regwatch.errors import DigestMismatch

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

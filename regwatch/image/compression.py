"""Layer compression, sniffed from a blob's first bytes: zstd, gzip or a plain tar, streamed."""

from __future__ import annotations

import io
import zlib
from typing import IO, Literal, Protocol, cast

from regwatch.errors import ImageError

Compression = Literal["zstd", "gzip", "none"]

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"

# Memory stays bounded however big the layer: compressed bytes asked of the blob stream per
# read, compressed bytes handed to zlib per call, and uncompressed bytes made per step.
_INPUT_CHUNK = 256 * 1024
_FEED = 64 * 1024
_OUTPUT_CHUNK = 1024 * 1024
_GZIP_WBITS = zlib.MAX_WBITS | 16  # a gzip wrapper only; zlib checks the CRC-32 and length


class Readable(Protocol):
    """What a blob stream must offer: `read(n)`, which may return fewer bytes than asked."""

    def read(self, size: int = -1, /) -> bytes: ...


class DecompressedStream(io.RawIOBase):
    """The uncompressed bytes of a blob, read-only; corrupt data raises `ImageError` from `read`.

    Closing it releases the decompressor but never the blob stream, which its opener owns.
    """

    def __init__(
        self,
        reader: Readable,
        compression: Compression,
        what: str,
        errors: tuple[type[Exception], ...] = (zlib.error, EOFError),
    ) -> None:
        super().__init__()
        self._reader = reader
        self._errors = errors
        self.compression: Compression = compression
        self.what = what
        self.bytes_out = 0
        # Output is made in big pieces and handed out in small ones from here, copying only
        # what is asked for: tarfile reads a header at a time.
        self._pending = b""
        self._offset = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            return b"".join(iter(lambda: self.read(_OUTPUT_CHUNK), b""))
        if self._offset >= len(self._pending):
            self._pending, self._offset = self._produce(), 0
        start = self._offset
        self._offset = min(start + size, len(self._pending))
        if start == 0 and self._offset == len(self._pending):
            return self._pending  # all of it: no copy
        return self._pending[start : self._offset]

    def _produce(self) -> bytes:
        try:
            data = self._reader.read(_OUTPUT_CHUNK)
        except self._errors as exc:
            raise ImageError(f"{self.what}: corrupt {self.compression} data: {exc}") from exc
        self.bytes_out += len(data)
        return data

    def close(self) -> None:
        if not self.closed:
            closer = getattr(self._reader, "close", None)
            if closer is not None:
                closer()
        super().close()


def decompressed(stream: Readable, *, what: str = "layer") -> DecompressedStream:
    """The blob's content, decompressed by what its first bytes say, whatever its media type.

    BuildKit can label zstd layers with gzip media types, so the bytes decide (resource spec
    §6.4). Nothing is held beyond one chunk: the peeked bytes are passed through, not lost.
    """
    head = _read_at_least(stream, len(ZSTD_MAGIC))
    source = _Prefixed(head, stream)
    if head.startswith(ZSTD_MAGIC):
        # Imported here: only a zstd layer needs it, and a step that never meets one should
        # not pay for loading it.
        import zstandard  # noqa: PLC0415

        reader = zstandard.ZstdDecompressor().stream_reader(
            cast(IO[bytes], source),  # it only ever calls read()
            read_size=_INPUT_CHUNK,
            read_across_frames=True,
            closefd=False,
        )
        return DecompressedStream(reader, "zstd", what, (zstandard.ZstdError, EOFError))
    if head.startswith(GZIP_MAGIC):
        return DecompressedStream(_Gunzip(source), "gzip", what)
    return DecompressedStream(source, "none", what)


def _read_at_least(stream: Readable, size: int) -> bytes:
    """Up to `size` bytes: a stream may hand out less than asked before its end."""
    parts: list[bytes] = []
    got = 0
    while got < size:
        part = stream.read(size - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


class _Prefixed:
    """A stream with bytes already read from it put back in front."""

    def __init__(self, head: bytes, stream: Readable) -> None:
        self._head = head
        self._stream = stream

    def read(self, size: int = -1, /) -> bytes:
        if not self._head:
            return self._stream.read(size)
        if size < 0:
            head, self._head = self._head, b""
            return head + self._stream.read()
        data, self._head = self._head[:size], self._head[size:]
        return data


class _Gunzip:
    """Streaming gunzip with zlib's own gzip wrapper (one pass: zlib verifies the CRC itself).

    Kept over `gzip.GzipFile` (raw inflate in small reads, then the CRC-32 in a second pass)
    by measurement: a 24 MB gzip layer (51 MB tar) from a digest-verifying stream inflated in
    160 ms instead of 255 ms, and applied in 280 ms instead of 355 ms. Input goes to zlib in
    windows of a bigger chunk, so that a short read does not copy the rest of the chunk.
    Several members may follow each other, as gzip(1) allows; zero bytes after one are padding.
    """

    def __init__(self, source: Readable) -> None:
        self._source = source
        self._input = memoryview(b"")
        self._inflate = zlib.decompressobj(_GZIP_WBITS)
        self._in_member = True
        self._finished = False

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            return b"".join(iter(lambda: self.read(_OUTPUT_CHUNK), b""))
        while size and not self._finished:
            if not self._input:
                self._input = memoryview(self._source.read(_INPUT_CHUNK))
                if not self._input:
                    return self._at_end_of_input(size)
            if not self._in_member:
                if not self._skip_padding():
                    continue
                self._inflate = zlib.decompressobj(_GZIP_WBITS)
                self._in_member = True
            window = self._input[:_FEED]
            data = self._inflate.decompress(window, size)
            if self._inflate.eof:
                left = len(self._inflate.unused_data)
                self._in_member = False
            else:
                left = len(self._inflate.unconsumed_tail)
            self._input = self._input[len(window) - left :]
            if data:
                return data
        return b""

    def _skip_padding(self) -> bool:
        """Drop zero bytes after a member; True when another member starts in the input."""
        data = bytes(self._input)
        stripped = data.lstrip(b"\0")
        self._input = self._input[len(data) - len(stripped) :]
        return bool(stripped)

    def _at_end_of_input(self, size: int) -> bytes:
        if self._in_member:
            data = self._inflate.decompress(b"", size)  # output zlib may still hold
            if data:
                return data
            raise EOFError("the stream ends inside a gzip member")
        self._finished = True
        return b""

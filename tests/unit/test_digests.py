from __future__ import annotations

import hashlib

import pytest

from regwatch.errors import DigestMismatch
from regwatch.image.digests import VerifyingReader, digest_of

DATA = b"hello registry " * 1000
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


def chunks(data: bytes, size: int = 1000) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_digest_of_supports_sha256_and_sha512() -> None:
    assert (
        digest_of(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert digest_of(b"", "sha512").startswith("sha512:cf83e1357eefb8bd")


def test_iterating_to_the_end_verifies() -> None:
    reader = VerifyingReader(chunks(DATA), DIGEST, len(DATA), "blob")
    assert b"".join(reader) == DATA
    assert reader.bytes_read == len(DATA)


def test_file_like_reads_in_any_size() -> None:
    reader = VerifyingReader(chunks(DATA, 7), DIGEST, None, "blob")
    parts = []
    while part := reader.read(333):
        parts.append(part)
    assert b"".join(parts) == DATA
    assert VerifyingReader(chunks(DATA), DIGEST, None, "blob").read() == DATA


@pytest.mark.parametrize(
    ("data", "size", "message"),
    [
        (DATA[:-1] + b"!", len(DATA), "content has digest"),
        (DATA[:-10], len(DATA), f"got {len(DATA) - 10} bytes, expected {len(DATA)}"),
        (DATA + b"extra", len(DATA), f"more than the expected {len(DATA)} bytes"),
        (DATA[:-1] + b"!", None, "content has digest"),
    ],
)
def test_mismatches_fail_before_the_stream_ends_cleanly(
    data: bytes, size: int | None, message: str
) -> None:
    reader = VerifyingReader(chunks(data), DIGEST, size, "download blob x")
    with pytest.raises(DigestMismatch, match=message):
        b"".join(reader)


def test_unknown_algorithm_is_refused() -> None:
    with pytest.raises(DigestMismatch, match="unsupported digest algorithm"):
        VerifyingReader([], "md5:abc", None, "blob")

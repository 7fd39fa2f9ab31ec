"""Local files as `out` reads and `in` writes them: regular files only, never blocking on a FIFO,
and new files that appear whole or not at all."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, TypeAlias

from regwatch.errors import ImageError

MAX_LOCAL_DOCUMENT_BYTES = 64 * 1024 * 1024
"""A manifest, index, config or `manifest.json` on disk larger than this is refused, not read."""

FILE_MODE = 0o666
"""Every file is created with this mode & umask (Go's `os.Create`); directories with 0o777."""

Opener: TypeAlias = Callable[[], AbstractContextManager[BinaryIO]]
"""Opens a new reader of one blob's bytes on each call."""


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A new file beside `path`, renamed to it when the block succeeds and removed otherwise.

    Created with `FILE_MODE` & umask.
    """
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.part")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    done = False
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
        os.replace(temp, path)
        done = True
    finally:
        if not done:
            temp.unlink(missing_ok=True)


def read_document(path: Path, what: str, size: int | None) -> bytes:
    """A small JSON file; too big for a manifest is refused before it is read."""
    actual = regular_size(path, what) if size is None else size
    if actual > MAX_LOCAL_DOCUMENT_BYTES:
        raise ImageError(f"{what} is too big ({actual} bytes)")
    try:
        with open_regular(path) as file:
            return file.read(MAX_LOCAL_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise ImageError(f"{what}: {path}: {exc.strerror or exc}") from None


def regular_size(path: Path, what: str) -> int:
    """The size of a regular file; anything else (a FIFO, a device, a socket) is refused."""
    try:
        status = path.stat()
    except OSError as exc:
        reason = "no such file" if isinstance(exc, FileNotFoundError) else exc.strerror or exc
        raise ImageError(f"{what}: {path}: {reason}") from None
    if not stat.S_ISREG(status.st_mode):
        raise ImageError(f"{what}: {path}: {file_kind(status.st_mode)}, not a regular file")
    return status.st_size


def file_opener(path: Path) -> Opener:
    return functools.partial(open_regular, path)


def open_regular(path: Path) -> io.BufferedReader:
    """Open a regular file for reading; anything else is refused without blocking on it.

    `O_NONBLOCK` makes opening a FIFO return at once instead of waiting for a writer; the
    check then happens on what was actually opened, not on an earlier `stat`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        regular_size(path, str(path.name))  # a socket cannot be opened: say what it is
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ImageError(f"{path}: {file_kind(mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def write_all(fd: int, data: bytes, at: int | None = None) -> None:
    """All of `data` to `fd` with raw writes (a write may take only part of it): at the file's
    position, or with `pwrite` at offset `at`, which threads sharing the descriptor can use."""
    written = 0
    with memoryview(data) as view:
        while written < len(data):
            rest = view[written:]
            written += os.write(fd, rest) if at is None else os.pwrite(fd, rest, at + written)


def file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a directory"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")

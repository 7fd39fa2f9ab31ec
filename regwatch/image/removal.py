"""Removing a directory tree at any depth and whatever its modes, without following a symlink.

`shutil.rmtree` recurses (a tree 1,000 levels deep raises `RecursionError`) and gives up on a
directory its user may not write (`0555`, `0500`: a non-root user cannot empty it). Here the
walk is a loop that holds one directory open at a time, so depth costs neither stack nor file
descriptors; a directory is made `u+rwx` before it is emptied; symlinks and files are unlinked,
never followed. Every step goes through the descriptor of the directory above it, so nothing
outside the tree is reached. Like the rootfs code, this assumes nothing else changes the tree
meanwhile; going back up checks that the parent is still the directory the walk came from.
"""

from __future__ import annotations

import errno
import os
import stat

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OWNER_ALL = stat.S_IRWXU


def remove_tree(path: str) -> None:
    """Remove `path`: a directory with everything below it, or a file or symlink itself.

    Missing is fine. The first failure is raised as the `OSError` it is.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(path)
        return
    _open_up(path, info, None)
    fd = _open_directory(path, info, None)
    try:
        _empty(fd)
    finally:
        os.close(fd)
    os.rmdir(path)


def remove_contents(path: str) -> None:
    """Empty the directory `path`, keeping it and its mode."""
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
    opened = _open_up(path, info, None)
    try:
        fd = _open_directory(path, info, None)
        try:
            _empty(fd)
        finally:
            os.close(fd)
    finally:
        if opened:
            os.chmod(path, stat.S_IMODE(info.st_mode))


def _empty(top: int) -> None:
    """Remove everything in the open directory `top`, depth first, one descriptor at a time."""
    fd = os.dup(top)
    # The directories above the current one: its name in each, the subdirectories still to
    # visit there, and the parent's identity, checked when the walk climbs back through `..`.
    above: list[tuple[str, list[str], tuple[int, int]]] = []
    try:
        pending = _unlink_all_but_directories(fd)
        while True:
            if pending:
                name = pending.pop()
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISDIR(info.st_mode):
                    os.unlink(name, dir_fd=fd)
                    continue
                _open_up(name, info, fd)
                child = _open_directory(name, info, fd)
                above.append((name, pending, _identity(fd)))
                os.close(fd)
                fd = child
                pending = _unlink_all_but_directories(fd)
                continue
            if not above:
                return
            name, pending, expected = above.pop()
            parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            if _identity(fd) != expected:
                raise OSError(errno.ESTALE, "a directory moved while it was being removed", name)
            os.rmdir(name, dir_fd=fd)
    finally:
        os.close(fd)


def _unlink_all_but_directories(fd: int) -> list[str]:
    """Unlink the files and symlinks of the open directory; its subdirectories' names."""
    with os.scandir(fd) as found:
        entries = list(found)  # listed whole first: readdir while unlinking is unspecified
    subdirectories: list[str] = []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            subdirectories.append(entry.name)
        else:
            os.unlink(entry.name, dir_fd=fd)
    return subdirectories


def _open_up(name: str, info: os.stat_result, dir_fd: int | None) -> bool:
    """Give the directory `name` (known by `lstat`) u+rwx so it can be listed and emptied.

    True when its mode had to change. Only a directory is changed, never a symlink's target.
    """
    if info.st_mode & _OWNER_ALL == _OWNER_ALL:
        return False
    os.chmod(name, stat.S_IMODE(info.st_mode) | _OWNER_ALL, dir_fd=dir_fd)
    return True


def _open_directory(name: str, info: os.stat_result, dir_fd: int | None) -> int:
    """Open the directory `name`, refusing a symlink or anything else that took its place."""
    fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    if _identity(fd) != (info.st_dev, info.st_ino):
        os.close(fd)
        raise OSError(errno.ESTALE, "a directory was replaced while it was being removed", name)
    return fd


def _identity(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino

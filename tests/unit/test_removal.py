"""Removing trees: any depth, any modes, symlinks removed and never followed (issue 8, #9)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from regwatch.image.removal import remove_contents, remove_tree
from tests.unprivileged import run_unprivileged, workspace

_DIR = os.O_RDONLY | os.O_DIRECTORY


def chain(top: Path, depth: int, name: str = "level", *, mode: int = 0o755) -> None:
    """`depth` nested directories below `top`, a file at the bottom; made through descriptors,
    so the tree may be deeper than any path the kernel accepts."""
    fd = os.open(top, _DIR)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, _DIR, dir_fd=fd)
            os.close(fd)
            fd = child
        os.close(os.open("leaf", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


@pytest.fixture
def base() -> Iterator[Path]:
    with workspace() as directory:
        yield directory


@pytest.mark.parametrize(
    ("depth", "name"),
    [(1_200, "d"), (30, "n" * 200)],
    ids=["deeper-than-the-recursion-limit", "deeper-than-path-max"],
)
def test_a_deep_tree_is_removed_whole(tmp_path: Path, depth: int, name: str) -> None:
    (tmp_path / "top").mkdir()
    chain(tmp_path / "top", depth, name)
    remove_tree(str(tmp_path / "top"))
    assert list(tmp_path.iterdir()) == []


def test_a_wide_tree_is_removed_whole(tmp_path: Path) -> None:
    top = tmp_path / "top"
    for number in range(100):
        (top / f"d{number}" / "sub").mkdir(parents=True)
        (top / f"d{number}" / "file").write_text("x")
        (top / f"d{number}" / "sub" / "file").write_text("x")
    remove_tree(str(top))
    assert not top.exists()


def test_symlinks_inside_are_removed_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "dir" / "keep").write_text("keep\n")
    (outside / "file").write_text("keep\n")
    top = tmp_path / "top"
    (top / "sub").mkdir(parents=True)
    (top / "sub" / "to-dir").symlink_to(outside / "dir")
    (top / "to-file").symlink_to(outside / "file")
    (top / "dangling").symlink_to(tmp_path / "nothing")
    remove_tree(str(top))
    assert not top.exists()
    assert (outside / "dir" / "keep").read_text() == "keep\n"
    assert (outside / "file").read_text() == "keep\n"


def test_a_symlink_to_a_directory_is_removed_itself(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "keep").write_text("keep\n")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    remove_tree(str(tmp_path / "link"))
    assert not (tmp_path / "link").is_symlink()
    assert (tmp_path / "real" / "keep").exists()


def test_a_file_is_unlinked_and_a_missing_path_is_fine(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    remove_tree(str(tmp_path / "file"))
    remove_tree(str(tmp_path / "missing"))
    assert list(tmp_path.iterdir()) == []


def _read_only_tree(top: Path) -> None:
    """Directories their owner may not write, list or enter, with content, nested."""
    modes = {"ro": 0o555, "ro/owner-only": 0o500, "ro/owner-only/closed": 0o000, "wo": 0o300}
    for rel in modes:
        (top / rel).mkdir(parents=True)
        (top / rel / "file").write_text("x")
        (top / rel / "link").symlink_to("/etc/passwd")
    chain(top / "ro", 20, mode=0o500)
    for rel, mode in sorted(modes.items(), reverse=True):
        (top / rel).chmod(mode)
    top.chmod(0o555)


@pytest.mark.parametrize("make", ["read-only", "deep read-only"])
def test_directories_without_write_permission_are_removed_by_their_owner(
    base: Path, make: str
) -> None:
    top = base / "top"
    neighbour = base / "neighbour"

    def prepare() -> None:
        top.mkdir()
        neighbour.mkdir(mode=0o555)
        if make == "read-only":
            _read_only_tree(top)
        else:
            chain(top, 1_200, mode=0o500)
            top.chmod(0o500)

    assert run_unprivileged(prepare) is None
    assert run_unprivileged(lambda: remove_tree(str(top))) is None
    assert not top.exists()
    assert stat.S_IMODE(neighbour.stat().st_mode) == 0o555


def test_emptying_keeps_the_directory_and_its_mode(base: Path) -> None:
    top = base / "top"

    def prepare() -> None:
        top.mkdir()
        _read_only_tree(top)

    assert run_unprivileged(prepare) is None
    assert run_unprivileged(lambda: remove_contents(str(top))) is None
    assert list(top.iterdir()) == []
    assert stat.S_IMODE(top.stat().st_mode) == 0o555


def test_emptying_refuses_what_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        remove_contents(str(tmp_path / "file"))

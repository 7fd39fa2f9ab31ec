"""Applying layers to a rootfs: the rules of resource spec §6.4, and no escape from the root (Q8).

Layers are written by the suite's own tar writer, so hostile entries that real tools refuse to
make can be tested. Every hostile case also checks that nothing outside the root changed.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import pytest
import zstandard

from regwatch.errors import HostileEntry, ImageError
from regwatch.image import compression as inflating
from regwatch.image import rootfs
from regwatch.image.compression import Inflater, decompressed
from regwatch.image.removal import remove_tree
from regwatch.image.rootfs import apply_layer
from tests import tarwriter as tw
from tests.tarwriter import Entry
from tests.unprivileged import run_unprivileged, workspace

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="ownership is only restored as root")

Layers = Sequence[Sequence[Entry]]


class Sandbox:
    """A root to unpack into, next to an `outside` directory that must never change."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "rootfs"
        self.outside = base / "outside"
        self.outside.mkdir()
        (self.outside / "sentinel").write_text("untouched\n")
        self.root.mkdir()
        self._before = self.snapshot_outside()

    def apply(self, *layers: Sequence[Entry], compression: tw.Compression = "gzip") -> list[str]:
        """Apply the layers in order; the debug lines they logged."""
        lines: list[str] = []
        for number, entries in enumerate(layers, start=1):
            apply_layer(
                self.root,
                io.BytesIO(tw.blob(entries, compression)),
                name=f"layer {number}",
                on_debug=lines.append,
            )
        return lines

    def snapshot_outside(self) -> dict[str, tuple[object, ...]]:
        """Everything under base except the root, and the host's /etc/passwd."""
        seen: dict[str, tuple[object, ...]] = {"/etc/passwd": _describe(Path("/etc/passwd"))}
        for directory, dirs, files in os.walk(self.base):
            if Path(directory) == self.base:
                dirs.remove("rootfs")
            for name in [*dirs, *files]:
                path = Path(directory, name)
                seen[str(path.relative_to(self.base))] = _describe(path)
        return seen

    def reset_outside(self) -> None:
        self._before = self.snapshot_outside()

    def assert_outside_untouched(self) -> None:
        assert self.snapshot_outside() == self._before

    def path(self, rel: str) -> Path:
        return self.root / rel


def _describe(path: Path) -> tuple[object, ...]:
    info = path.lstat()
    content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    return (stat.filemode(info.st_mode), info.st_uid, info.st_gid, info.st_mtime_ns, content)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    sandbox = Sandbox(tmp_path)
    yield sandbox
    sandbox.assert_outside_untouched()
    remove_tree(str(sandbox.root))  # pytest's own clean-up recurses: a deep tree breaks it


def names(path: Path) -> set[str]:
    return {child.name for child in path.iterdir()}


# -- files, directories, links ------------------------------------------------------------------


def test_regular_files_directories_and_missing_parents(box: Sandbox) -> None:
    box.apply([tw.directory("etc", mode=0o750), tw.file("etc/hosts", "127.0.0.1\n")])
    box.apply([tw.file("usr/share/doc/readme", "deep\n")])
    assert box.path("etc/hosts").read_text() == "127.0.0.1\n"
    assert stat.S_IMODE(box.path("etc").stat().st_mode) == 0o750
    for made in ("usr", "usr/share", "usr/share/doc"):
        assert stat.S_IMODE(box.path(made).stat().st_mode) == 0o755 & ~_umask()
    assert box.path("usr/share/doc/readme").read_text() == "deep\n"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_keeps_file_permissions_and_modified_times(box: Sandbox) -> None:
    """Pinned by in_test.go › "file attributes" (/home/alex/birthday)."""
    when = datetime(1991, 6, 3, 5, 30, 30, tzinfo=UTC).timestamp()
    box.apply([tw.file("home/alex/birthday", "cake\n", mode=0o603, uid=1000, gid=1000, mtime=when)])
    info = box.path("home/alex/birthday").stat()
    assert stat.S_IMODE(info.st_mode) == 0o603
    assert info.st_mtime == when


@needs_root
def test_keeps_file_ownership_as_root(box: Sandbox) -> None:
    box.apply(
        [
            tw.directory("home/alex", uid=1000, gid=1000),
            tw.file("home/alex/birthday", mode=0o603, uid=1000, gid=1000),
            tw.symlink("home/alex/link", "birthday", uid=1001, gid=1002),
            tw.file("home/alex/setuid", mode=0o4755, uid=1000, gid=1000),
        ]
    )
    for rel, owner in [("home/alex", 1000), ("home/alex/birthday", 1000)]:
        info = box.path(rel).stat()
        assert (info.st_uid, info.st_gid) == (owner, owner)
    link = box.path("home/alex/link").lstat()
    assert (link.st_uid, link.st_gid) == (1001, 1002)  # lchown, not the target
    setuid = box.path("home/alex/setuid").stat()
    assert stat.S_IMODE(setuid.st_mode) == 0o4755  # chmod after chown keeps the setuid bit


@needs_root
def test_ownership_is_left_to_the_running_user_unless_as_root(box: Sandbox) -> None:
    blob = tw.blob([tw.file("mine", uid=1000, gid=1000)])
    apply_layer(box.root, io.BytesIO(blob), name="layer", as_root=False)
    assert box.path("mine").stat().st_uid == os.geteuid()


def test_special_mode_bits_are_kept(box: Sandbox) -> None:
    box.apply(
        [
            tw.file("setuid", mode=0o4755),
            tw.file("setgid", mode=0o2755),
            tw.directory("tmp", mode=0o1777),
        ]
    )
    assert stat.S_IMODE(box.path("setuid").stat().st_mode) == 0o4755
    assert stat.S_IMODE(box.path("setgid").stat().st_mode) == 0o2755
    assert stat.S_IMODE(box.path("tmp").stat().st_mode) == 0o1777


def test_times_keep_nanoseconds_and_atime_is_never_older_than_mtime(box: Sandbox) -> None:
    box.apply(
        [
            tw.file("fraction", mtime=675934230.5),
            tw.file("old-atime", mtime=tw.EPOCH, atime=tw.EPOCH - 100),
            tw.file("new-atime", mtime=tw.EPOCH, atime=tw.EPOCH + 100),
        ]
    )
    assert box.path("fraction").stat().st_mtime_ns == 675934230_500000000
    assert box.path("old-atime").stat().st_atime == tw.EPOCH
    assert box.path("new-atime").stat().st_atime == tw.EPOCH + 100


def test_directory_times_are_set_again_after_the_layer_fills_them(box: Sandbox) -> None:
    box.apply([tw.directory("d", mtime=tw.EPOCH - 5000), tw.file("d/x"), tw.directory("d/e")])
    assert box.path("d").stat().st_mtime == tw.EPOCH - 5000


def test_later_layers_leave_the_times_of_directories_they_do_not_name(box: Sandbox) -> None:
    box.apply(
        [
            *(tw.directory("d", mtime=tw.EPOCH - 5000), tw.file("d/old")),
            *(tw.directory("d/sub", mtime=tw.EPOCH - 4000), tw.file("d/sub/x")),
            *(tw.directory("e", mtime=tw.EPOCH - 3000), tw.directory("e/inner")),
        ]
    )
    box.apply(
        [
            *(tw.file("d/new"), tw.hardlink("d/linked", "d/old"), tw.whiteout("d/sub/x")),
            tw.file("d/made/deeper/f"),
            tw.opaque("e"),
        ]
    )
    assert box.path("d").stat().st_mtime == tw.EPOCH - 5000
    assert box.path("d/sub").stat().st_mtime == tw.EPOCH - 4000
    assert box.path("e").stat().st_mtime == tw.EPOCH - 3000
    assert names(box.path("e")) == set()


def test_a_large_file_is_streamed_whole(box: Sandbox) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    box.apply([tw.file("big", data)])
    assert box.path("big").read_bytes() == data


def test_long_names_and_link_targets(box: Sandbox) -> None:
    deep = "/".join(["directory-with-a-long-name"] * 6) + "/file"
    target = "/" + "t" * 150
    box.apply([tw.file(deep, "x"), tw.symlink("s", target), tw.hardlink("h", deep)])
    assert box.path(deep).read_text() == "x"
    assert os.readlink(box.path("s")) == target
    assert box.path("h").stat().st_ino == box.path(deep).stat().st_ino


def test_symlinks_keep_their_target_verbatim(box: Sandbox) -> None:
    box.apply([tw.symlink("abs", "/usr/lib"), tw.symlink("rel", "../../x"), tw.file("usr/lib/z")])
    assert os.readlink(box.path("abs")) == "/usr/lib"  # not rebased onto the root
    assert os.readlink(box.path("rel")) == "../../x"


def test_hard_links_share_the_inode(box: Sandbox) -> None:
    box.apply([tw.file("a/original", "same\n"), tw.hardlink("b/link", "a/original")])
    assert box.path("b/link").stat().st_ino == box.path("a/original").stat().st_ino
    assert box.path("b/link").read_text() == "same\n"


def test_a_hard_link_to_a_symlink_links_the_symlink_itself(box: Sandbox) -> None:
    target = str(box.outside / "sentinel")
    box.apply([tw.symlink("s", target), tw.hardlink("h", "s")])
    assert os.readlink(box.path("h")) == target
    assert box.path("h").lstat().st_ino == box.path("s").lstat().st_ino


def test_a_hard_link_that_is_later_removed_leaves_a_regular_file(box: Sandbox) -> None:
    """Pinned by in_test.go › "a hardlink that is later removed" › "works"."""
    box.apply(
        [
            tw.file("hardlink-test/original-file", "hardlinked\n"),
            tw.hardlink("hardlink-test/hardlink-file", "hardlink-test/original-file"),
        ],
        [tw.whiteout("hardlink-test/original-file")],
    )
    remaining = box.path("hardlink-test/hardlink-file")
    assert stat.S_ISREG(remaining.lstat().st_mode)
    assert remaining.read_text() == "hardlinked\n"
    assert names(box.path("hardlink-test")) == {"hardlink-file"}


def test_fifos_are_made_and_devices_skipped(box: Sandbox) -> None:
    lines = box.apply(
        [
            tw.fifo("run/pipe", mode=0o620),
            tw.device("dev/null", tw.CHAR),
            tw.device("dev/sda", tw.BLOCKDEV, major=8, minor=0),
        ]
    )
    info = box.path("run/pipe").lstat()
    assert stat.S_ISFIFO(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o620
    assert not box.path("dev/null").exists()
    assert not box.path("dev/sda").exists()
    assert "skipping device dev/null" in lines
    assert "skipping device dev/sda" in lines


def test_pax_global_headers_are_ignored(box: Sandbox) -> None:
    box.apply([tw.global_header(comment="made by git archive"), tw.file("x", "y")])
    assert names(box.root) == {"x"}


@pytest.mark.parametrize("kind", [b"V", b"Z"])
def test_unknown_entry_types_fail_the_layer(box: Sandbox, kind: bytes) -> None:
    with pytest.raises(ImageError, match=r"^layer 1: weird: unsupported entry type") as raised:
        box.apply([tw.odd("weird", kind)])
    assert str(raised.value) == f"layer 1: weird: unsupported entry type ({kind.decode()})"


def test_debug_lines_tell_what_happens(box: Sandbox) -> None:
    lines = box.apply(
        [tw.file("a", "1"), tw.symlink("s", "a"), tw.hardlink("h", "a"), tw.file("d/x")],
        [tw.whiteout("a"), tw.opaque("d"), tw.file("s", "2")],
    )
    assert lines == [
        "unpacking a",
        "unpacking s",
        "symlinking to a",
        "unpacking h",
        "hardlinking to a",
        "unpacking d/x",
        f"removing {box.root}/a",
        f"removing contents of {box.root}/d",
        "unpacking s",
        f"removing {box.root}/s",
    ]


# -- what is already there ----------------------------------------------------------------------


def test_a_file_replaces_a_symlink_instead_of_writing_through_it(box: Sandbox) -> None:
    """Pinned by in_test.go › "layers that replace symlinks with regular files"."""
    box.apply([tw.file("a", "symlinked\n"), tw.symlink("b", "a")], [tw.file("b", "replaced\n")])
    assert box.path("a").read_text() == "symlinked\n"
    assert stat.S_ISREG(box.path("b").lstat().st_mode)
    assert box.path("b").read_text() == "replaced\n"


def test_the_same_within_one_layer(box: Sandbox) -> None:
    box.apply([tw.file("a", "symlinked\n"), tw.symlink("b", "a"), tw.file("b", "replaced\n")])
    assert box.path("a").read_text() == "symlinked\n"
    assert box.path("b").read_text() == "replaced\n"


def test_a_directory_onto_a_directory_merges_and_takes_the_new_metadata(box: Sandbox) -> None:
    box.apply(
        [tw.directory("d", mode=0o700), tw.file("d/old")],
        [tw.directory("d", mode=0o751, mtime=tw.EPOCH + 7), tw.file("d/new")],
    )
    assert names(box.path("d")) == {"old", "new"}
    info = box.path("d").stat()
    assert stat.S_IMODE(info.st_mode) == 0o751
    assert info.st_mtime == tw.EPOCH + 7


@pytest.mark.parametrize(
    ("before", "after", "check"),
    [
        pytest.param(
            [tw.directory("p"), tw.file("p/inner")],
            [tw.file("p", "file now")],
            lambda p: p.read_text() == "file now",
            id="file replaces directory tree",
        ),
        pytest.param(
            [tw.file("p", "file")],
            [tw.directory("p", mode=0o705)],
            lambda p: p.is_dir() and stat.S_IMODE(p.stat().st_mode) == 0o705,
            id="directory replaces file",
        ),
        pytest.param(
            [tw.directory("real"), tw.file("real/keep"), tw.symlink("p", "real")],
            [tw.directory("p")],
            lambda p: not p.is_symlink() and p.is_dir() and names(p) == set(),
            id="directory replaces symlink to directory",
        ),
        pytest.param(
            [tw.file("p", "old")],
            [tw.symlink("p", "elsewhere")],
            lambda p: os.readlink(p) == "elsewhere",
            id="symlink replaces file",
        ),
        pytest.param(
            [tw.file("p", "old"), tw.file("other", "other")],
            [tw.hardlink("p", "other")],
            lambda p: p.read_text() == "other",
            id="hard link replaces file",
        ),
        pytest.param(
            [tw.file("p", "old")],
            [tw.fifo("p")],
            lambda p: stat.S_ISFIFO(p.lstat().st_mode),
            id="fifo replaces file",
        ),
    ],
)
def test_anything_else_already_there_is_removed_first(
    box: Sandbox, before: list[Entry], after: list[Entry], check: Callable[[Path], bool]
) -> None:
    box.apply(before, after)
    assert check(box.path("p"))


def test_the_entry_dot_leaves_the_root_alone(box: Sandbox) -> None:
    box.root.chmod(0o711)
    box.apply([tw.directory(".", mode=0o700), tw.directory("./", mode=0o777), tw.file("./x")])
    assert stat.S_IMODE(box.root.stat().st_mode) == 0o711
    assert names(box.root) == {"x"}


def test_an_absolute_name_lands_inside_the_root(box: Sandbox) -> None:
    box.apply([tw.file("/etc/motd", "hello\n"), tw.file("a/../b", "cleaned\n")])
    assert box.path("etc/motd").read_text() == "hello\n"
    assert box.path("b").read_text() == "cleaned\n"


# -- whiteouts ------------------------------------------------------------------------------------


def test_removed_files_in_layers_stay_removed(box: Sandbox) -> None:
    """Pinned by in_test.go › "removed files in layers" (the tree of testdata/whiteout)."""
    box.apply(
        [
            tw.directory("top-dir-1"),
            tw.file("top-dir-1/nested-file"),
            tw.directory("top-dir-1/nested-dir"),
            *(
                tw.file(f"top-dir-1/nested-dir/{name}")
                for name in ("file-here", "file-gone", "file-recreated", "file-then-dir")
            ),
            tw.directory("top-dir-2"),
            tw.file("top-dir-2/file"),
            tw.directory("top-dir-3"),
            tw.file("top-dir-3/file-gone"),
            tw.directory("top-dir-3/nested-dir"),
            tw.file("top-dir-3/nested-dir/file-gone"),
            tw.directory("top-dir-4"),
            tw.file("top-dir-4/file-gone"),
        ],
        [
            tw.whiteout("top-dir-1/nested-dir/file-gone"),
            tw.whiteout("top-dir-1/nested-dir/file-recreated"),
            tw.whiteout("top-dir-1/nested-dir/file-then-dir"),
            tw.whiteout("top-dir-2"),
            tw.directory("top-dir-3"),
            tw.opaque("top-dir-3"),
            tw.directory("top-dir-3/nested-dir"),
            tw.directory("top-dir-4", uid=1000, gid=1000),
            tw.opaque("top-dir-4", uid=1000, gid=1000),
        ],
        [
            tw.file("top-dir-1/nested-dir/file-recreated"),
            tw.directory("top-dir-1/nested-dir/file-then-dir"),
        ],
    )
    assert names(box.path("top-dir-1")) == {"nested-file", "nested-dir"}
    nested = box.path("top-dir-1/nested-dir")
    assert names(nested) == {"file-here", "file-recreated", "file-then-dir"}
    assert stat.S_ISREG((nested / "file-recreated").lstat().st_mode)
    assert stat.S_ISDIR((nested / "file-then-dir").lstat().st_mode)
    assert not box.path("top-dir-2").exists()
    assert names(box.path("top-dir-3")) == {"nested-dir"}
    assert names(box.path("top-dir-3/nested-dir")) == set()
    top4 = box.path("top-dir-4")
    assert top4.is_dir()
    assert names(top4) == set()
    if IS_ROOT:
        assert (top4.stat().st_uid, top4.stat().st_gid) == (1000, 1000)


def test_a_whiteout_of_something_missing_is_fine(box: Sandbox) -> None:
    box.apply([tw.whiteout("never-was"), tw.whiteout("no/such/dir/file"), tw.file("x")])
    assert names(box.root) == {"x"}


def test_a_whiteout_does_not_follow_a_symlink_it_removes(box: Sandbox) -> None:
    box.apply([tw.directory("real"), tw.file("real/keep"), tw.symlink("link", "real")])
    box.apply([tw.whiteout("link")])
    assert names(box.root) == {"real"}
    assert names(box.path("real")) == {"keep"}


def test_a_failed_whiteout_fails_the_layer(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """Quirk Q5: the original stopped silently; regwatch fails loudly."""
    box.apply([tw.directory("d"), tw.file("d/x")])

    def refuse(path: str, *_: object, **__: object) -> None:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(rootfs, "remove_tree", refuse)
    with pytest.raises(ImageError, match=r"^layer 1: \.wh\.d: permission denied$"):
        box.apply([tw.whiteout("d"), tw.file("after")])
    assert not box.path("after").exists()


def test_an_opaque_whiteout_empties_its_directory_but_keeps_it(box: Sandbox) -> None:
    box.apply([tw.directory("d", mode=0o750), tw.file("d/old"), tw.file("d/sub/deeper")])
    box.apply([tw.opaque("d"), tw.file("d/new")])
    assert names(box.path("d")) == {"new"}
    assert stat.S_IMODE(box.path("d").stat().st_mode) == 0o750


@needs_root
def test_an_opaque_whiteout_gives_the_directory_the_markers_owner(box: Sandbox) -> None:
    box.apply([tw.directory("d"), tw.file("d/old")], [tw.opaque("d", uid=1000, gid=1001)])
    info = box.path("d").stat()
    assert (info.st_uid, info.st_gid) == (1000, 1001)


def test_an_opaque_whiteout_in_a_missing_directory_makes_it(box: Sandbox) -> None:
    """Quirk Q7: the original panicked."""
    box.apply([tw.opaque("not/yet"), tw.file("not/yet/x")])
    assert names(box.path("not/yet")) == {"x"}


def test_an_opaque_whiteout_at_the_top_empties_the_root(box: Sandbox) -> None:
    box.apply([tw.file("a"), tw.file("b/c")], [tw.opaque(""), tw.file("fresh")])
    assert names(box.root) == {"fresh"}


# -- compression ----------------------------------------------------------------------------------

LAYER = [tw.directory("d"), tw.file("d/f", "content\n" * 1000)]


@pytest.fixture(params=["installed", "stdlib"])
def inflater(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Inflater:
    """The gzip tests run with the inflater regwatch found, and again with the fallback."""
    if request.param == "stdlib":
        monkeypatch.setattr(inflating, "INFLATER", inflating.STDLIB_ZLIB)
    return inflating.INFLATER


def test_zlib_ng_inflates_when_installed() -> None:
    # the test extra installs it, as `pip install regwatch[fast]` does
    assert inflating.INFLATER.name == "zlib-ng"


@pytest.mark.usefixtures("inflater")
@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_compression_is_sniffed_from_the_bytes(box: Sandbox, compression: tw.Compression) -> None:
    box.apply(LAYER, compression=compression)
    assert box.path("d/f").read_text() == "content\n" * 1000


class Trickle:
    """A blob stream that hands out at most `step` bytes per read, and notes reaching its end."""

    def __init__(self, data: bytes, step: int = 1) -> None:
        self._data = data
        self._step = step
        self.at_end = False

    def read(self, size: int = -1, /) -> bytes:
        step = self._step if size < 0 else min(size, self._step)
        part, self._data = self._data[:step], self._data[step:]
        self.at_end = self.at_end or not part
        return part


@pytest.mark.usefixtures("inflater")
@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_the_sniffed_bytes_are_passed_through(compression: tw.Compression) -> None:
    data = tw.tar(LAYER)
    stream = decompressed(Trickle(tw.compress(data, compression), step=3))
    assert stream.compression == compression
    assert stream.read() == data


def test_short_blobs_are_plain() -> None:
    assert decompressed(io.BytesIO(b"\x1f")).read() == b"\x1f"
    assert decompressed(io.BytesIO(b"")).read() == b""


@pytest.mark.usefixtures("inflater")
def test_concatenated_gzip_members_and_zero_padding_are_one_stream() -> None:
    blob = gzip.compress(b"first ") + gzip.compress(b"second") + bytes(100)
    assert decompressed(Trickle(blob, step=7)).read() == b"first second"


@pytest.mark.usefixtures("inflater")
def test_the_blob_is_read_to_its_end(box: Sandbox) -> None:
    # tar and gzip readers skip zero padding after the end; zstd readers refuse it
    padding: dict[tw.Compression, bytes] = {"gzip": bytes(4096), "zstd": b"", "none": bytes(4096)}
    for compression, pad in padding.items():
        stream = Trickle(tw.blob(LAYER, compression) + pad, step=10_000)
        apply_layer(box.root, stream, name="layer")
        assert stream.at_end, compression


def test_an_empty_blob_is_an_empty_layer(box: Sandbox) -> None:
    apply_layer(box.root, io.BytesIO(b""), name="layer")
    apply_layer(box.root, io.BytesIO(gzip.compress(b"")), name="layer")
    assert names(box.root) == set()


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


GZIP = tw.blob(LAYER, "gzip")
EMPTY_ZSTD = zstandard.ZstdCompressor().compress(b"")
ZSTD = tw.blob(LAYER, "zstd")
TAR = tw.tar(LAYER)


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        pytest.param(_flip(GZIP, len(GZIP) // 2), "corrupt gzip data", id="gzip damaged"),
        pytest.param(GZIP[: len(GZIP) // 2], "corrupt gzip data", id="gzip truncated"),
        pytest.param(_flip(GZIP, len(GZIP) - 6), "corrupt gzip data", id="gzip bad crc"),
        pytest.param(GZIP + b"trailing junk", "corrupt gzip data", id="gzip junk after"),
        pytest.param(_flip(ZSTD, len(ZSTD) // 2), "corrupt zstd data", id="zstd damaged"),
        pytest.param(EMPTY_ZSTD, "not a tar archive", id="zstd empty"),
        pytest.param(b"this is not a tar archive" * 40, "not a tar archive", id="not tar"),
        pytest.param(_flip(TAR, 512 + 148), "corrupt tar", id="damaged later header"),
        pytest.param(TAR[: 512 + 100], "corrupt tar", id="truncated header"),
        pytest.param(TAR[: 1024 + 100], "corrupt tar", id="truncated file"),
    ],
)
@pytest.mark.usefixtures("inflater")
def test_damaged_blobs_fail_with_one_line(box: Sandbox, blob: bytes, message: str) -> None:
    with pytest.raises(ImageError) as raised:
        apply_layer(box.root, io.BytesIO(blob), name="layer sha256:abc")
    text = str(raised.value)
    assert text.startswith(f"layer sha256:abc: {message}")
    assert "\n" not in text
    assert not isinstance(raised.value, HostileEntry)


@pytest.mark.parametrize("blob", [_flip(GZIP, len(GZIP) // 2), GZIP, _flip(TAR, 512 + 148)])
def test_the_reading_thread_ends_with_the_layer(box: Sandbox, blob: bytes) -> None:
    with contextlib.suppress(ImageError):
        apply_layer(box.root, io.BytesIO(blob), name="layer")
    assert not [t for t in threading.enumerate() if t.name.startswith("regwatch-inflate")]


def test_corrupt_data_errors_keep_their_cause(inflater: Inflater) -> None:
    with pytest.raises(ImageError) as raised:
        decompressed(io.BytesIO(_flip(GZIP, 20)), what="blob").read()
    assert isinstance(raised.value.__cause__, inflater.error)
    with pytest.raises(ImageError) as raised:
        decompressed(io.BytesIO(_flip(ZSTD, 5)), what="blob").read()
    assert isinstance(raised.value.__cause__, zstandard.ZstdError)


# -- hostile entries (Q8) -------------------------------------------------------------------------


# (id, layers, the entry the error must name); `outside` is a sibling of the root.
HOSTILE: list[tuple[str, Layers, str]] = [
    ("dot-dot", [[tw.file("../sentinel", "pwned")]], "../sentinel"),
    ("dot-dot inside", [[tw.file("a/../../outside/sentinel", "pwned")]], "a/../../outside"),
    ("dot-dot dir", [[tw.directory("../outside/new")]], "../outside/new"),
    ("dot-dot symlink", [[tw.symlink("../outside/link", "/")]], "../outside/link"),
    (
        "hardlink to /etc/passwd",
        [[tw.hardlink("passwd", "../../etc/passwd")]],
        "passwd",
    ),
    (
        "hardlink to the sentinel",
        [[tw.hardlink("stolen", "../outside/sentinel")]],
        "stolen",
    ),
    ("whiteout of ..", [[tw.directory("a"), tw.file("a/.wh...")]], "a/.wh..."),
    ("whiteout of .", [[tw.file(".wh..")]], ".wh.."),
    ("whiteout of nothing", [[tw.file(".wh.")]], ".wh."),
    ("file named .", [[tw.file(".", "pwned")]], "."),
    ("symlink named ..", [[tw.symlink("a/..", "/")]], "a/.."),
    (
        "through a climbing symlink",
        [[tw.symlink("evil", "../outside"), tw.file("evil/sentinel", "pwned")]],
        "evil/sentinel",
    ),
    (
        "through a climbing symlink, across layers",
        [[tw.symlink("evil", "../../../..")], [tw.file("evil/etc/passwd", "pwned")]],
        "evil/etc/passwd",
    ),
    (
        "through a nested climbing symlink",
        [
            [tw.directory("a/b"), tw.symlink("a/b/up", "../../.."), tw.symlink("x", "a/b/up")],
            [tw.file("x/outside/sentinel", "pwned")],
        ],
        "x/outside/sentinel",
    ),
    (
        "hardlink through a climbing symlink",
        [[tw.symlink("evil", ".."), tw.hardlink("stolen", "evil/outside/sentinel")]],
        "stolen",
    ),
    (
        "whiteout through a climbing symlink",
        [[tw.symlink("evil", "../outside")], [tw.whiteout("evil/sentinel")]],
        "evil/.wh.sentinel",
    ),
    (
        "opaque whiteout through a climbing symlink",
        [[tw.symlink("evil", "..")], [tw.opaque("evil/outside")]],
        "evil/outside/.wh..wh..opq",
    ),
    (
        "directory replaced by a symlink in the same layer",
        [[tw.directory("d"), tw.file("d/x"), tw.symlink("d", ".."), tw.file("d/y")]],
        "d/y",
    ),
    (
        "directory whited out, then a symlink",
        [
            [tw.directory("d"), tw.file("d/x")],
            [tw.whiteout("d"), tw.symlink("d", "..")],
            [tw.file("d/outside/sentinel")],
        ],
        "d/outside/sentinel",
    ),
    (
        "emptied by an opaque whiteout, then a symlink",
        [
            [tw.directory("a/b"), tw.file("a/b/x"), tw.opaque("a"), tw.symlink("a/b", "../..")],
            [tw.file("a/b/outside/sentinel")],
        ],
        "a/b/outside/sentinel",
    ),
]


@pytest.mark.parametrize(("layers", "entry"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_hostile_entries_are_refused(
    box: Sandbox, layers: Layers, entry: str, compression: tw.Compression
) -> None:
    with pytest.raises(HostileEntry) as raised:
        box.apply(*layers, compression=compression)
    assert f": entry '{entry}" in str(raised.value)
    assert str(raised.value).startswith("layer ")
    assert (box.outside / "sentinel").read_text() == "untouched\n"
    # the fixture then checks that nothing at all changed outside the root


def test_a_hostile_hard_link_says_where_it_points(box: Sandbox) -> None:
    with pytest.raises(HostileEntry) as raised:
        box.apply([tw.hardlink("passwd", "../../etc/passwd")])
    assert str(raised.value) == (
        "layer 1: entry 'passwd' links outside of target directory: ../../etc/passwd"
    )


def test_nothing_of_a_hostile_entry_is_applied(box: Sandbox) -> None:
    box.apply([tw.directory("a"), tw.symlink("a/up", "../..")])
    with pytest.raises(HostileEntry):
        box.apply([tw.file("a/up/new/deeper/file")])
    assert names(box.root) == {"a"}
    assert names(box.path("a")) == {"up"}


# Entries that try to reach outside through symlinks that do not climb: resolved as in a
# chroot, they land inside the root, where the image itself would see them.
class Confined(NamedTuple):
    layers: Layers
    rel: str  # a path inside the root
    expected: str | None  # its text, or None for "not there"


def _confined_cases(outside: str) -> dict[str, Confined]:
    inside = outside.lstrip("/")
    return {
        "write through an absolute symlink": Confined(
            [[tw.symlink("evil", outside), tw.file("evil/sentinel", "pwned")]],
            f"{inside}/sentinel",
            "pwned",
        ),
        "write through an absolute symlink, across layers": Confined(
            [[tw.symlink("evil", outside)], [tw.file("evil/sentinel", "pwned")]],
            f"{inside}/sentinel",
            "pwned",
        ),
        "replace a symlink to the sentinel": Confined(
            [[tw.symlink("evil", f"{outside}/sentinel")], [tw.file("evil", "pwned")]],
            "evil",
            "pwned",
        ),
        "directory over a symlink to outside": Confined(
            [[tw.symlink("evil", outside)], [tw.directory("evil"), tw.file("evil/x", "in")]],
            "evil/x",
            "in",
        ),
        "whiteout through an absolute symlink": Confined(
            [[tw.symlink("evil", outside)], [tw.whiteout("evil/sentinel")]],
            f"{inside}/sentinel",
            None,
        ),
        "opaque whiteout on a symlink": Confined(
            [[tw.symlink("evil", outside)], [tw.opaque("evil")]],
            "evil/sentinel",
            None,
        ),
        "directory replaced by an absolute symlink in the same layer": Confined(
            [[tw.directory("d"), tw.file("d/x"), tw.symlink("d", outside), tw.file("d/y", "in")]],
            f"{inside}/y",
            "in",
        ),
        "usrmerge-style relative symlink": Confined(
            [[tw.directory("usr/bin"), tw.symlink("bin", "usr/bin")], [tw.file("bin/sh", "sh")]],
            "usr/bin/sh",
            "sh",
        ),
    }


CONFINED_IDS = list(_confined_cases("/x"))


@pytest.mark.parametrize("case", CONFINED_IDS)
def test_symlinks_in_the_way_resolve_inside_the_root(box: Sandbox, case: str) -> None:
    layers, rel, expected = _confined_cases(str(box.outside))[case]
    box.apply(*layers)
    if expected is None:
        assert not box.path(rel).exists()
    else:
        assert box.path(rel).read_text() == expected


def test_a_hard_link_through_an_absolute_symlink_finds_nothing_outside(box: Sandbox) -> None:
    with pytest.raises(ImageError, match="hard-link target evil/sentinel does not exist") as raised:
        box.apply([tw.symlink("evil", str(box.outside)), tw.hardlink("h", "evil/sentinel")])
    assert not isinstance(raised.value, HostileEntry)


def test_a_symlink_loop_is_an_error(box: Sandbox) -> None:
    with pytest.raises(ImageError, match="too many levels of symbolic links"):
        box.apply([tw.symlink("loop", "loop"), tw.file("loop/x")])


def test_a_file_where_a_directory_is_needed_is_an_error(box: Sandbox) -> None:
    with pytest.raises(ImageError, match=r"^layer 2: f/x: f is not a directory$"):
        box.apply([tw.file("f")], [tw.file("f/x")])


# -- cost: what an entry may make the walk do (issue 8, #8) --------------------------------------


class Lookups:
    """Counts the lookups apply_layer makes (lstat, readlink): the work that grew per entry."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for name in ("lstat", "readlink"):
            monkeypatch.setattr(os, name, self._counted(getattr(os, name)))

    def _counted(self, real: Callable[..., object]) -> Callable[..., object]:
        def counted(*args: object, **kwargs: object) -> object:
            self.count += 1
            return real(*args, **kwargs)

        return counted


def _chain(links: int, hop: Callable[[int], str]) -> list[Entry]:
    """`d`, `l0 -> d`, then `l<i>` whose target `hop(i)` leads to `l<i-1>`."""
    return [
        tw.directory("d"),
        tw.symlink("l0", "d"),
        *(tw.symlink(f"l{i}", hop(i)) for i in range(1, links)),
    ]


DEEP = "/".join(["deep"] * 200)

# name: (entries making the links, the path through them, the directory it leads to)
CHAINS: dict[str, tuple[list[Entry], str, str]] = {
    "relative links through a directory and back": (
        _chain(40, lambda i: f"d/../d/../l{i - 1}"),
        "l39",
        "d",
    ),
    "absolute links": (_chain(40, lambda i: f"/d/../l{i - 1}"), "l39", "d"),
    "links in directories of their own": (
        [
            *(tw.directory("d"), tw.directory("p0"), tw.symlink("p0/l", "../d")),
            *(
                entry
                for i in range(1, 39)
                for entry in (tw.directory(f"p{i}"), tw.symlink(f"p{i}/l", f"../p{i - 1}/l"))
            ),
        ],
        "p38/l",
        "d",
    ),
    "a link to a deep directory": ([tw.directory(DEEP), tw.symlink("l", DEEP)], "l", DEEP),
}


@pytest.mark.parametrize("chain", CHAINS, ids=list(CHAINS))
def test_entries_through_chained_symlinks_cost_their_own_components(
    box: Sandbox, monkeypatch: pytest.MonkeyPatch, chain: str
) -> None:
    """Issue 8: each entry re-resolved every link; now a layer costs its entries, once each."""
    links, through, lands = CHAINS[chain]
    entries = 2_000
    lookups = Lookups(monkeypatch)
    box.apply(
        [
            *links,
            *(tw.whiteout(f"{through}/gone{n}") for n in range(entries)),
            tw.file(f"{through}/kept", "kept\n"),
            tw.directory(f"{through}/sub"),
            tw.file(f"{through}/sub/file", "sub\n"),
        ]
    )
    assert lookups.count < 2 * entries + 1_000  # was 40 and more per entry
    assert box.path(f"{lands}/kept").read_text() == "kept\n"
    assert box.path(f"{lands}/sub/file").read_text() == "sub\n"


def test_a_layer_of_chained_symlinks_unpacks_in_time_proportional_to_its_entries(
    box: Sandbox,
) -> None:
    """The reported layer's shape: 16,000 entries through 40 links (13 s of CPU before)."""
    links, through, _ = CHAINS["relative links through a directory and back"]
    started = time.process_time()
    box.apply([*links, *(tw.whiteout(f"{through}/g{n}") for n in range(16_000))])
    assert time.process_time() - started < 10  # ~1 s now


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        pytest.param(
            [*_chain(40, lambda i: "d/../" * 19 + f"l{i - 1}"), tw.file("l39/x")],
            "layer 1: l39/x: its symbolic links lead through more than 255 path components",
            id="the reported layer: 40 links of 39 components",
        ),
        pytest.param(
            [tw.directory("d"), tw.symlink("l", "d/../" * 200 + "d"), tw.file("l/x")],
            "layer 1: l/x: its symbolic links lead through more than 255 path components",
            id="one long link",
        ),
        pytest.param(
            [
                tw.symlink("l0", "."),
                *(tw.symlink(f"l{i}", f"l{i - 1}/l{i - 1}") for i in range(1, 12)),
                tw.file("l11/x"),
            ],
            "layer 1: l11/x: too many levels of symbolic links",
            id="links that double at each level",
        ),
        pytest.param(
            [
                tw.directory("d"),
                *(tw.symlink(f"l{i}", f"l{i + 1}") for i in range(41)),
                tw.symlink("l41", "d"),
                tw.whiteout("l0/x"),
            ],
            "layer 1: l0/.wh.x: too many levels of symbolic links",
            id="41 links in a row, for a whiteout",
        ),
    ],
)
def test_symlinks_that_cost_too_much_fail_the_entry_in_one_line(
    box: Sandbox, monkeypatch: pytest.MonkeyPatch, entries: list[Entry], message: str
) -> None:
    lookups = Lookups(monkeypatch)
    with pytest.raises(ImageError) as raised:
        box.apply(entries)
    assert str(raised.value) == message
    assert not isinstance(raised.value, HostileEntry)
    assert lookups.count < 500


def test_the_limit_counts_cached_links_as_fresh_ones(box: Sandbox) -> None:
    """A link followed once is remembered; a later entry through it pays its cost again."""
    entries = [tw.directory("d"), tw.symlink("l", "d/../" * 60 + "d"), tw.file("l/x")]
    box.apply([*entries, tw.symlink("m", "l/" + "../l/" * 40), tw.file("l/y")])
    with pytest.raises(ImageError, match="more than 255 path components"):
        box.apply([tw.file("m/z")])
    assert names(box.path("d")) == {"x", "y"}


# What the walk remembers must follow what the layer changes: each case first sends an entry
# through a path (so it is remembered), then changes a component, then goes through again.
CHANGED: dict[str, tuple[Layers, dict[str, str], set[str]]] = {
    "a symlink replaced by another": (
        [
            [tw.directory("a"), tw.directory("b"), tw.symlink("l", "a"), tw.file("l/x", "1")],
            [tw.symlink("l", "b"), tw.file("l/y", "2")],
        ],
        {"a/x": "1", "b/y": "2"},
        {"a/y", "b/x"},
    ),
    "a symlink replaced by another, same layer": (
        [
            [
                *(tw.directory("a"), tw.directory("b"), tw.symlink("l", "a"), tw.file("l/x", "1")),
                *(tw.symlink("l", "b"), tw.file("l/y", "2")),
            ]
        ],
        {"a/x": "1", "b/y": "2"},
        {"a/y"},
    ),
    "a symlink replaced by a directory": (
        [
            [tw.directory("a"), tw.symlink("l", "a"), tw.file("l/x", "1")],
            [tw.directory("l"), tw.file("l/y", "2")],
        ],
        {"a/x": "1", "l/y": "2"},
        {"a/y", "l/x"},
    ),
    "a directory on the way whited out": (
        [
            [
                *(tw.directory("d/t"), tw.symlink("l", "d/t"), tw.file("l/x", "1")),
                *(tw.whiteout("d"), tw.file("l/y", "2")),
            ]
        ],
        {"d/t/y": "2"},
        {"d/t/x"},
    ),
    "a directory on the way replaced by a symlink": (
        [
            [
                *(tw.directory("d/t"), tw.directory("e/t"), tw.symlink("l", "d/t")),
                *(tw.file("l/x", "1"), tw.symlink("d", "e"), tw.file("l/y", "2")),
            ]
        ],
        {"e/t/y": "2"},
        {"e/t/x"},
    ),
    "an opaque whiteout under the link": (
        [
            [tw.directory("p/t"), tw.symlink("p/l", "t"), tw.file("p/l/x", "1")],
            [
                *(tw.opaque("p"), tw.directory("p/u"), tw.file("p/l/x", "lost")),
                *(tw.symlink("p/l", "u"), tw.file("p/l/y", "2")),
            ],
        ],
        {"p/u/y": "2"},
        {"p/t", "p/u/x"},
    ),
    "a hard link after its target's directory moved": (
        [
            [
                *(tw.directory("a"), tw.directory("b"), tw.symlink("l", "a")),
                *(tw.file("l/f", "a"), tw.file("b/f", "b"), tw.hardlink("h1", "l/f")),
                *(tw.symlink("l", "b"), tw.hardlink("h2", "l/f")),
            ]
        ],
        {"h1": "a", "h2": "b"},
        set(),
    ),
}


@pytest.mark.parametrize("case", CHANGED, ids=list(CHANGED))
def test_what_the_walk_remembers_follows_the_layer(box: Sandbox, case: str) -> None:
    layers, present, absent = CHANGED[case]
    box.apply(*layers)
    for rel, text in present.items():
        assert box.path(rel).read_text() == text, rel
    for rel in absent:
        assert not box.path(rel).exists(), rel


def test_a_remembered_directory_replaced_by_a_file_is_not_a_directory(box: Sandbox) -> None:
    with pytest.raises(ImageError, match=r"^layer 1: d/y: d is not a directory$"):
        box.apply([tw.directory("d"), tw.file("d/x"), tw.file("d"), tw.file("d/y")])


def test_a_remembered_link_replaced_to_climb_out_is_hostile(box: Sandbox) -> None:
    with pytest.raises(HostileEntry):
        box.apply(
            [
                *(tw.directory("d"), tw.symlink("l", "d"), tw.file("l/x")),
                *(tw.symlink("d", "../.."), tw.file("l/outside/sentinel", "pwned")),
            ]
        )


# -- deep trees and read-only directories (issue 8, #9) -----------------------------------------

DEPTH = 1_200
TREE = "/".join(["d"] * DEPTH)


def _deep_tree(*, mode: int = 0o755) -> list[Entry]:
    """A valid tree 1,200 directories deep, each level an entry of its own, a file at the bottom."""
    levels = [tw.directory("/".join(["d"] * n), mode=mode) for n in range(1, DEPTH + 1)]
    return [*levels, tw.file(f"{TREE}/leaf", "bottom\n")]


def test_a_deep_tree_unpacks(box: Sandbox) -> None:
    box.apply(_deep_tree(mode=0o555), [tw.file(f"{TREE}/later", "later\n")])
    assert box.path(f"{TREE}/leaf").read_text() == "bottom\n"
    assert box.path(f"{TREE}/later").read_text() == "later\n"
    assert stat.S_IMODE(box.path(TREE).stat().st_mode) == 0o555


@pytest.mark.parametrize(
    ("later", "left"),
    [
        ([tw.whiteout("d")], set()),
        ([tw.opaque("")], set()),
        ([tw.symlink("d", "elsewhere")], {"d"}),
    ],
    ids=["whiteout", "opaque whiteout", "replaced by a symlink"],
)
def test_a_deep_tree_removed_by_a_later_layer_goes_whole(
    box: Sandbox, later: list[Entry], left: set[str]
) -> None:
    """Issue 8: a RecursionError here left a partial rootfs."""
    box.apply([tw.file(f"{TREE}/leaf")], later)
    assert names(box.root) == left
    assert not box.path(TREE).exists()


# A non-root run: modes hold, so directories an earlier layer left read-only must be opened up
# for a later layer to write into them, and given their mode back afterwards.


@pytest.fixture
def unprivileged_box() -> Iterator[Sandbox]:
    """A sandbox whose root and outside belong to the user `run_unprivileged` runs as."""
    with workspace() as base:
        sandbox = Sandbox(base)
        owner = base.stat()
        for path in (sandbox.root, sandbox.outside, sandbox.outside / "sentinel"):
            os.chown(path, owner.st_uid, owner.st_gid)
        sandbox.reset_outside()
        yield sandbox
        sandbox.assert_outside_untouched()


READ_ONLY: dict[str, tuple[Layers, dict[str, str], dict[str, int]]] = {
    "a later layer writes into a 0555 directory": (
        [
            [tw.directory("ro", mode=0o555), tw.file("ro/old", "old\n")],
            [tw.file("ro/new", "new\n"), tw.whiteout("ro/old")],
        ],
        {"ro/new": "new\n"},
        {"ro": 0o555},
    ),
    "a later layer makes directories inside a 0500 directory": (
        [
            [tw.directory("ro", mode=0o500), tw.directory("ro/sub", mode=0o500)],
            [tw.file("ro/sub/a/b/c", "deep\n")],
        ],
        {"ro/sub/a/b/c": "deep\n"},
        {"ro": 0o500, "ro/sub": 0o500, "ro/sub/a": 0o755},
    ),
    "a later layer removes a read-only tree": (
        [
            [
                *(tw.directory("ro", mode=0o555), tw.directory("ro/in", mode=0o500)),
                *(tw.file("ro/in/f"), tw.directory("ro/in/closed", mode=0o000)),
                tw.directory("keep", mode=0o555),
            ],
            [tw.whiteout("ro"), tw.file("after", "after\n")],
        ],
        {"after": "after\n"},
        {"keep": 0o555},
    ),
    "a later layer replaces a read-only tree with a file": (
        [
            [tw.directory("ro", mode=0o555), tw.directory("ro/in", mode=0o500), tw.file("ro/in/f")],
            [tw.file("ro", "file\n")],
        ],
        {"ro": "file\n"},
        {},
    ),
    "an opaque whiteout empties a read-only directory": (
        [
            [tw.directory("ro", mode=0o555), tw.directory("ro/in", mode=0o500), tw.file("ro/in/f")],
            [tw.opaque("ro"), tw.file("ro/new", "new\n")],
        ],
        {"ro/new": "new\n"},
        {"ro": 0o555},
    ),
    "a hard link to a file in a closed directory": (
        [
            [tw.directory("shut", mode=0o000), tw.file("shut/f", "f\n")],
            [tw.hardlink("h", "shut/f")],
        ],
        {"h": "f\n"},
        {"shut": 0o000},
    ),
    "a deep read-only tree whited out": (
        [_deep_tree(mode=0o555), [tw.whiteout("d")]],
        {},
        {},
    ),
}


@pytest.mark.parametrize("case", READ_ONLY, ids=list(READ_ONLY))
def test_read_only_directories_of_earlier_layers_as_a_non_root_user(
    unprivileged_box: Sandbox, case: str
) -> None:
    """Issue 8: PermissionError; root ignores modes, so this runs as an ordinary user."""
    layers, present, modes = READ_ONLY[case]
    box = unprivileged_box
    assert run_unprivileged(lambda: box.apply(*layers)) is None
    for rel, text in present.items():
        assert box.path(rel).read_text() == text, rel
    for rel, mode in modes.items():
        assert stat.S_IMODE(box.path(rel).lstat().st_mode) == mode, rel

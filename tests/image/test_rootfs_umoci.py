"""apply_layer against a real tool: layers made by umoci, unpacked by umoci, compared tree by tree.

umoci repack turns changes to an unpacked bundle into layers (deletions into `.wh.` whiteouts,
shared inodes into hard links); opaque whiteouts, which it never writes, come from the suite's
tar writer through `umoci raw add-layer`. The reference is `umoci unpack --rootless` of the same
image; ownership is compared with a plain `umoci unpack` when running as root (rootless
unpacking gives everything to the running user).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from regwatch.image.rootfs import apply_layer
from tests import tarwriter as tw
from tests.registries import require_tool
from tests.unprivileged import run_unprivileged, workspace

IS_ROOT = os.geteuid() == 0
OLD = datetime(1991, 6, 3, 5, 30, 30, tzinfo=UTC).timestamp()

Change = Callable[[Path], None]


class Umoci:
    """One OCI layout with one tag, built up layer by layer through an unpacked bundle."""

    def __init__(self, tool: str, workdir: Path) -> None:
        self.tool = tool
        self.layout = workdir / "layout"
        self.image = f"{self.layout}:t"
        self.bundle = workdir / "bundle"
        self.run("init", "--layout", str(self.layout))
        self.run("new", "--image", self.image)
        self.run("unpack", "--rootless", "--image", self.image, str(self.bundle))

    def run(self, *args: str) -> None:
        done = subprocess.run(
            [self.tool, *args], check=False, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"umoci {args[0]} failed: {done.stderr}"

    def layer(self, change: Change) -> None:
        """Change the bundle's rootfs and record the difference as a new layer."""
        change(self.bundle / "rootfs")
        self.run("repack", "--refresh-bundle", "--image", self.image, str(self.bundle))

    def raw_layer(self, entries: list[tw.Entry], workdir: Path) -> None:
        archive = workdir / "raw-layer.tar"
        archive.write_bytes(tw.tar(entries))
        self.run("raw", "add-layer", "--image", self.image, str(archive))

    def unpack(self, target: Path, *, rootless: bool) -> Path:
        self.run(
            "unpack", *(["--rootless"] if rootless else []), "--image", self.image, str(target)
        )
        return target / "rootfs"

    def layer_blobs(self) -> list[Path]:
        """The tag's layer blobs in manifest order, read from the layout as a puller would."""
        index = json.loads((self.layout / "index.json").read_text())
        (manifest,) = [
            m
            for m in index["manifests"]
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "t"
        ]
        document = json.loads(self._blob(manifest["digest"]).read_text())
        return [self._blob(layer["digest"]) for layer in document["layers"]]

    def _blob(self, digest: str) -> Path:
        algorithm, _, hexdigest = digest.partition(":")
        return self.layout / "blobs" / algorithm / hexdigest


# -- the changes, one layer each ----------------------------------------------------------------


def _write(path: Path, text: str | bytes, mode: int = 0o644, mtime: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    path.chmod(mode)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def base_layer(rootfs: Path) -> None:
    _write(rootfs / "etc/hostname", "box\n")
    _write(rootfs / "home/alex/birthday", "cake\n", mode=0o603, mtime=OLD)
    _write(rootfs / "usr/bin/tool", "#!/bin/sh\necho v1\n", mode=0o755, mtime=OLD + 1)
    _write(rootfs / "usr/bin/su", "setuid\n", mode=0o4755)
    _write(rootfs / "usr/bin/wall", "setgid\n", mode=0o2755)
    _write(rootfs / "usr/lib/libx.so.1", os.urandom(2 * 1024 * 1024 + 3), mode=0o755)
    (rootfs / "usr/lib/libx.so").symlink_to("libx.so.1")
    (rootfs / "bin").symlink_to("usr/bin")
    (rootfs / "broken").symlink_to("/nowhere/at/all")
    os.link(rootfs / "usr/bin/tool", rootfs / "usr/bin/tool-again")
    (rootfs / "tmp").mkdir()
    (rootfs / "tmp").chmod(0o1777)
    (rootfs / "srv/shared").mkdir(parents=True)
    (rootfs / "srv/shared").chmod(0o2775)
    os.mkfifo(rootfs / "srv/pipe", 0o620)
    _write(rootfs / "hardlink-test/original-file", "hardlinked\n")
    os.link(rootfs / "hardlink-test/original-file", rootfs / "hardlink-test/hardlink-file")
    _write(rootfs / "a", "symlinked\n")
    (rootfs / "b").symlink_to("a")
    _write(rootfs / "to-be-removed/f1", "1")
    _write(rootfs / "to-be-removed/sub/f2", "2")
    _write(rootfs / "file-then-dir", "file")
    _write(rootfs / "dir-then-file/inner", "inner")
    _write(rootfs / "usr/share/doc/readme", "doc\n", mtime=OLD + 2)


def second_layer(rootfs: Path) -> None:
    (rootfs / "hardlink-test/original-file").unlink()
    (rootfs / "b").unlink()
    _write(rootfs / "b", "replaced\n")
    for path in sorted((rootfs / "to-be-removed").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (rootfs / "to-be-removed").rmdir()
    (rootfs / "file-then-dir").unlink()
    _write(rootfs / "file-then-dir/x", "now a directory\n")
    (rootfs / "dir-then-file/inner").unlink()
    (rootfs / "dir-then-file").rmdir()
    _write(rootfs / "dir-then-file", "now a file\n")
    os.link(rootfs / "etc/hostname", rootfs / "etc/hostname-again")
    _write(rootfs / "usr/bin/tool", "#!/bin/sh\necho v2\n", mode=0o755, mtime=OLD + 3)
    (rootfs / "home/alex/birthday").chmod(0o600)
    os.utime(rootfs / "etc/hostname", (OLD + 4, OLD + 4))


def third_layer(rootfs: Path) -> None:
    (rootfs / "usr/lib/libx.so").unlink()
    (rootfs / "usr/lib/libx.so").symlink_to("/usr/lib/libx.so.1")
    _write(rootfs / "to-be-removed/f1", "back\n")
    _write(rootfs / "usr/bin/newuid", "new\n", mode=0o4711, mtime=OLD + 5)
    (rootfs / "broken").unlink()


def opaque_layer() -> list[tw.Entry]:
    return [
        tw.directory("usr/share", mode=0o755),
        tw.opaque("usr/share"),
        tw.file("usr/share/only", "only this\n", mtime=OLD + 6),
        tw.directory("fresh"),
        tw.opaque("fresh"),
        tw.file("fresh/x", "x\n"),
        tw.file("owned", "mine\n", uid=1000, gid=1001, mode=0o640),
        tw.directory("home/alex", mode=0o750, uid=1000, gid=1000),
    ]


# -- comparing trees ------------------------------------------------------------------------------


def describe(root: Path, unstamped: frozenset[str] = frozenset()) -> dict[str, tuple[object, ...]]:
    """Every path below root: type, mode, symlink target, content digest, file and directory mtime.

    `unstamped` directories are made implicitly (no entry of their own names them), so their
    time is the moment of unpacking and is left out.
    """
    tree: dict[str, tuple[object, ...]] = {}
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(directory, name)
            info = path.lstat()
            rel = str(path.relative_to(root))
            kind = stat.S_IFMT(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                tree[rel] = (kind, os.readlink(path))
            elif stat.S_ISREG(info.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                tree[rel] = (kind, oct(stat.S_IMODE(info.st_mode)), digest, info.st_mtime_ns)
            elif stat.S_ISDIR(info.st_mode) and rel not in unstamped:
                tree[rel] = (kind, oct(stat.S_IMODE(info.st_mode)), info.st_mtime_ns)
            else:
                tree[rel] = (kind, oct(stat.S_IMODE(info.st_mode)))
    return tree


def link_groups(root: Path) -> set[frozenset[str]]:
    """Paths that share an inode, as sets."""
    by_inode: dict[int, set[str]] = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = Path(directory, name)
            info = path.lstat()
            if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
                by_inode.setdefault(info.st_ino, set()).add(str(path.relative_to(root)))
    return {frozenset(group) for group in by_inode.values()}


def owners(root: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(directory, name)
            info = path.lstat()
            found[str(path.relative_to(root))] = (info.st_uid, info.st_gid)
    return found


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Umoci:
    tool = require_tool("umoci")
    workdir = tmp_path_factory.mktemp("umoci")
    built = Umoci(tool, workdir)
    for change in (base_layer, second_layer, third_layer):
        built.layer(change)
    built.raw_layer(opaque_layer(), workdir)
    return built


def test_the_image_has_the_layers_this_test_means(image: Umoci) -> None:
    assert len(image.layer_blobs()) == 4


def test_applied_layers_match_umoci_unpack(image: Umoci, tmp_path: Path) -> None:
    reference = image.unpack(tmp_path / "reference", rootless=True)
    ours = tmp_path / "ours"
    for number, blob in enumerate(image.layer_blobs(), start=1):
        with blob.open("rb") as stream:
            apply_layer(ours, stream, name=f"layer {number}")

    expected, got = describe(reference), describe(ours)
    assert sorted(got) == sorted(expected)
    assert got == expected
    assert link_groups(ours) == link_groups(reference)
    # the pinned end states, spelled out in case umoci and we agree on something wrong
    assert (ours / "a").read_text() == "symlinked\n"
    assert (ours / "b").read_text() == "replaced\n"
    assert not (ours / "b").is_symlink()
    assert (ours / "hardlink-test/hardlink-file").read_text() == "hardlinked\n"
    assert not (ours / "to-be-removed/sub").exists()
    assert sorted(p.name for p in (ours / "usr/share").iterdir()) == ["only"]
    assert stat.S_IMODE((ours / "usr/bin/su").stat().st_mode) == 0o4755
    assert (ours / "home/alex/birthday").stat().st_mtime == OLD


@pytest.mark.skipif(not IS_ROOT, reason="ownership is only restored as root")
def test_ownership_matches_a_root_umoci_unpack(image: Umoci, tmp_path: Path) -> None:
    reference = image.unpack(tmp_path / "reference", rootless=False)
    ours = tmp_path / "ours"
    for number, blob in enumerate(image.layer_blobs(), start=1):
        with blob.open("rb") as stream:
            apply_layer(ours, stream, name=f"layer {number}")
    assert owners(ours) == owners(reference)
    assert owners(ours)["owned"] == (1000, 1001)
    assert owners(ours)["home/alex"] == (1000, 1000)


# -- read-only directories, chained symlinks, a deep tree (issue 8, #8 and #9) ------------------


def hardened_layers() -> list[list[tw.Entry]]:
    chain = [tw.directory("d"), tw.symlink("l0", "d")]
    chain += [tw.symlink(f"l{i}", f"d/../d/../l{i - 1}") for i in range(1, 30)]
    deep = "/".join(["deep"] * 60)
    return [
        [
            *(tw.directory("ro", mode=0o555), tw.file("ro/old", "old\n")),
            *(tw.directory("shut", mode=0o500), tw.directory("shut/sub", mode=0o500)),
            tw.file("shut/sub/f", "f\n"),
            tw.directory("keep", mode=0o555),
            *chain,
            tw.file(f"{deep}/leaf", "leaf\n"),
        ],
        [
            *(tw.file("ro/new", "new\n"), tw.whiteout("ro/old"), tw.whiteout("shut/sub")),
            *(tw.file("l29/through", "through\n"), tw.directory("l29/made", mode=0o555)),
            tw.whiteout("deep/deep"),
        ],
        [tw.opaque("keep"), tw.file("keep/only", "only\n"), tw.file("ro/newer", "newer\n")],
    ]


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory) -> Umoci:
    tool = require_tool("umoci")
    workdir = tmp_path_factory.mktemp("umoci-hardened")
    built = Umoci(tool, workdir)
    for entries in hardened_layers():
        built.raw_layer(entries, workdir)
    return built


def test_read_only_directories_and_link_chains_match_umoci_as_a_non_root_user(
    hardened: Umoci, tmp_path: Path
) -> None:
    reference = hardened.unpack(tmp_path / "reference", rootless=True)
    with workspace() as base:
        ours = base / "ours"

        blobs = [blob.read_bytes() for blob in hardened.layer_blobs()]  # nobody may not read them

        def unpack() -> None:
            for number, blob in enumerate(blobs, start=1):
                apply_layer(ours, io.BytesIO(blob), name=f"layer {number}")

        assert run_unprivileged(unpack) is None
        implicit = frozenset({"deep"})
        expected, got = describe(reference, implicit), describe(ours, implicit)
        assert sorted(got) == sorted(expected)
        assert got == expected
    assert sorted(expected) == sorted(
        ["d", "d/made", "d/through", "deep", "keep", "keep/only", "ro", "ro/new", "ro/newer"]
        + [f"l{i}" for i in range(30)]
        + ["shut"]
    )
    assert expected["ro"][1] == oct(0o555)

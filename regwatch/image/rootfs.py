"""Apply image layers to a directory: whiteouts, hard links, modes and times; refuse hostile paths.

Safety (resource spec Q8): nothing an entry does may reach outside `root`.

* An entry name is cleaned lexically, as the original does (`a/../b` is `b`, a leading `/` is
  dropped); a `..` that climbs above `root` makes the entry hostile.
* Symlinks among an entry's *parent* components are resolved the way a chroot would, component
  by component, with `root` as `/` (the approach of umoci's and containerd's securejoin): an
  absolute link target starts again at `root`, so `evil -> /etc` then `evil/passwd` writes
  `root/etc/passwd`. A link whose `..` would climb above `root` makes the entry hostile; a
  real directory is never assumed where a symlink stands.
* The entry's own last component is never followed: whatever stands there is removed first,
  files are created with `O_CREAT | O_EXCL | O_NOFOLLOW`, hard links are made to the link
  target itself (never through a final symlink), and whiteouts delete without following.
* Hard-link targets and whiteouts go through the same resolution.
* What resolving costs is bounded: one entry's path may follow at most 40 symlinks, through at
  most 255 components of their targets. Within a layer the real directories met and where each
  symlink led are remembered, so an entry pays for its own name; what a remembered link cost
  still counts against the bounds, so a cached answer and a fresh one agree.
* Removal (whiteouts, replaced directories) is iterative, at any depth (`removal`). Run as
  non-root, a directory of an earlier layer without u+rwx is opened up while this layer writes
  into it and gets its mode back at the end.

A hostile entry raises `HostileEntry` before it changes anything. The checks are `lstat`
based: they assume nothing else writes into `root` while a layer is applied (the destination
of a get belongs to that get). Under that assumption there is no window between check and use.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import NamedTuple, Self

from regwatch.errors import HostileEntry, ImageError
from regwatch.image.compression import DecompressedStream, Readable, decompressed
from regwatch.image.files import write_all
from regwatch.image.removal import remove_contents, remove_tree

OPAQUE_WHITEOUT = ".wh..wh..opq"
WHITEOUT_PREFIX = ".wh."

_COPY_CHUNK = 1024 * 1024
_MAX_SYMLINKS = 40  # as Linux's path walk
_MAX_LINK_STEPS = 255  # components of symlink targets one path may lead through
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_SYMLINK_TIMES = os.utime in os.supports_follow_symlinks


def _supported(member: tarfile.TarInfo) -> bool:
    """Devices and whiteouts are handled before; everything else must be one of these."""
    return member.isreg() or member.isdir() or member.issym() or member.islnk() or member.isfifo()


def apply_layer(
    root: Path,
    layer: Readable,
    *,
    name: str,
    as_root: bool | None = None,
    on_debug: Callable[[str], None] | None = None,
) -> None:
    """Apply one layer blob (gzip, zstd or plain tar, sniffed) on top of what `root` holds.

    `name` labels the layer in errors. Ownership is restored only when running `as_root`
    (default: the effective uid is 0). The blob is read to its end, so a digest-verifying
    stream gets to check it; closing `layer` stays with its opener.
    """
    if as_root is None:
        as_root = os.geteuid() == 0
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as exc:
        raise ImageError(f"{name}: destination {root}: {_reason(exc)}") from exc
    with decompressed(layer, what=name) as stream:
        applier = _Layer(os.fspath(root), name, stream, as_root=as_root, on_debug=on_debug)
        tar = _open_tar(stream, name)
        if tar is not None:
            with tar:
                # TarFile remembers every header it reads (3.13 added stream=True against
                # that); a layer can hold 10^5 entries, so forget them as they are applied.
                remembered: list[tarfile.TarInfo] = vars(tar)["members"]
                try:
                    while (member := tar.next()) is not None:
                        remembered.clear()
                        applier.apply(member, tar)
                except tarfile.TarError as exc:
                    raise ImageError(f"{name}: corrupt tar: {exc}") from exc
            applier.finish()
        while stream.read(_COPY_CHUNK):  # the rest: padding, then the gzip trailer and digest
            pass


def _open_tar(stream: DecompressedStream, name: str) -> tarfile.TarFile | None:
    """The layer's tar; None for an empty blob (an empty layer, as in Go).

    Read in `r:` mode over the forward-only stream: headers are read 512 bytes at a time and
    bodies straight from the stream, where stream mode (`r|`) copied every byte through its
    10 KiB record buffer (13 % of an `in` before).
    """
    try:
        return tarfile.open(fileobj=stream, mode="r:", tarinfo=_Header)
    except tarfile.ReadError as exc:
        # Not for zstd: its reader cannot tell a damaged frame from an empty one.
        if stream.bytes_out == 0 and stream.compression != "zstd":
            return None
        raise ImageError(f"{name}: not a tar archive: {exc}") from exc


class _Header(tarfile.TarInfo):
    """A tar header that fails loudly: tarfile takes a corrupt header mid-archive for the end.

    Wrapped at `fromtarfile`, the one entry `TarFile.next` calls: Pythons with the 2025 tarfile
    fixes (3.12.11, 3.13.4, Debian's 3.11.2-6+deb12u6, …) no longer parse through `frombuf`.
    """

    @classmethod
    def fromtarfile(cls, archive: tarfile.TarFile) -> Self:
        try:
            return super().fromtarfile(archive)
        except tarfile.HeaderError as exc:
            # A zero block or a clean end of input is the end of the archive; anything else
            # (bad checksum, half a header) is damage.
            if type(exc).__name__ in ("EOFHeaderError", "EmptyHeaderError"):
                raise
            raise tarfile.ReadError(f"damaged header: {exc}") from exc


class _Dir:
    """A directory of the root known to be real (no symlink on the way), in this layer's cache.

    The cache is a tree, so removing a directory forgets everything below it at once.
    """

    __slots__ = ("children", "depth", "gone", "name", "parent")

    def __init__(self, name: str, parent: _Dir | None) -> None:
        self.name = name
        self.parent = parent
        self.depth: int = 0 if parent is None else parent.depth + 1
        self.children: dict[str, _Dir] = {}
        self.gone = False

    def rel(self, child: str | None = None) -> str:
        """The path relative to the root (of `child` inside, when given)."""
        names = [] if child is None else [child]
        node: _Dir | None = self
        while node is not None and node.parent is not None:
            names.append(node.name)
            node = node.parent
        return "/".join(reversed(names))

    def alive(self) -> bool:
        node: _Dir | None = self
        while node is not None:
            if node.gone:
                return False
            node = node.parent
        return True

    def child(self, name: str) -> _Dir:
        node = self.children.get(name)
        if node is None:
            node = self.children[name] = _Dir(name, self)
        return node

    def forget(self, name: str) -> None:
        node = self.children.pop(name, None)
        if node is not None:
            node.gone = True


class _Resolved(NamedTuple):
    """Where a symlink led, and what following it cost, so the cost is the same when cached."""

    target: _Dir
    hops: int
    steps: int


class _Return(NamedTuple):
    """Marks, among the components to walk, the end of a symlink's target."""

    link: tuple[_Dir, str]
    hops: int
    steps: int


class _Layer:
    """The state of one layer being applied: which directories are known, where links lead."""

    def __init__(
        self,
        root: str,
        name: str,
        stream: DecompressedStream,
        *,
        as_root: bool,
        on_debug: Callable[[str], None] | None,
    ) -> None:
        self._root = root.rstrip("/") or "/"
        self._stream = stream
        self._prefix = self._root.rstrip("/") + "/"
        self._name = name
        self._as_root = as_root
        self._debug = on_debug
        self._top = _Dir("", None)
        # Symlinks already followed in this layer, by (directory, name). Any removal of a
        # directory or symlink clears it: the way a cached link took may be gone.
        self._links: dict[tuple[_Dir, str], _Resolved] = {}
        # Directory entries of this layer: their mode and times are set again at the end,
        # since entries applied later inside them change their mtime.
        self._dir_times: dict[_Dir, tuple[int, int, int]] = {}
        # Directories of earlier layers opened up (u+rwx) so a non-root run can write into
        # them: their mode is given back at the end.
        self._opened: dict[_Dir, int] = {}
        # Directories whose entries this layer changes without naming them: their times as
        # they were before, given back at the end (as umoci does), so a directory keeps the
        # time its own layer gave it, not the moment a later layer added or removed a child.
        self._kept: dict[_Dir, tuple[int, int]] = {}

    # -- one entry ------------------------------------------------------------------------------

    def apply(self, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        if member.type == tarfile.XGLTYPE:
            return
        entry = member.name
        parts = self._clean(entry, entry)
        base = parts[-1] if parts else ""
        try:
            if base.startswith(WHITEOUT_PREFIX):
                self._whiteout(parts, member)
            elif member.ischr() or member.isblk():
                self._say(f"skipping device {entry}")
            else:
                self._unpack(parts, member, tar)
        except OSError as exc:
            raise ImageError(f"{self._name}: {entry}: {_reason(exc)}") from exc

    def _unpack(self, parts: list[str], member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        entry = member.name
        if not _supported(member):
            kind = member.type.decode("latin-1")
            raise ImageError(f"{self._name}: {entry}: unsupported entry type ({kind})")
        if not parts:
            if member.isdir():
                return  # `.`: the original skips it, and the destination keeps its own mode
            raise HostileEntry(f"{self._name}: entry '{entry}' would replace the destination")
        link_target = self._link_target(member) if member.islnk() else None
        parent = self._resolve(parts[:-1], entry, create=True)
        assert parent is not None  # create=True always finds or makes the parent
        self._keep_times(parent)
        base = parts[-1]
        path = self._prefix + parent.rel(base)
        self._say(f"unpacking {entry}")
        try:
            existing = os.lstat(path)
        except FileNotFoundError:
            pass
        else:
            if member.isdir() and stat.S_ISDIR(existing.st_mode):
                # merge, then the entry's metadata
                self._set_directory(path, parent.child(base), member)
                return
            self._remove(parent, base, existing)  # so a file replaces a symlink, never follows it
        if link_target is not None:
            self._say(f"hardlinking to {member.linkname}")
            # Metadata is the target's (they share the inode), as in the original (quirk Q6).
            os.link(link_target, path, follow_symlinks=False)
        else:
            self._create(path, parent, base, member, tar)

    def _create(
        self,
        path: str,
        parent: _Dir,
        base: str,
        member: tarfile.TarInfo,
        tar: tarfile.TarFile,
    ) -> None:
        if member.isreg():
            self._write_file(path, member, tar)
        elif member.isdir():
            os.mkdir(path, 0o700)
            self._set_directory(path, parent.child(base), member)
        elif member.issym():
            self._say(f"symlinking to {member.linkname}")
            os.symlink(member.linkname, path)
            self._own(path, member)
            if _SYMLINK_TIMES:
                os.utime(path, ns=_times(member), follow_symlinks=False)
        else:
            os.mkfifo(path, 0o600)
            self._own(path, member)
            os.chmod(path, stat.S_IMODE(member.mode))
            os.utime(path, ns=_times(member), follow_symlinks=False)

    def _write_file(self, path: str, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        fd = os.open(path, _CREATE_FLAGS, 0o600)
        try:
            if member.issparse():
                source = tar.extractfile(member)
                assert source is not None  # a regular file always has a body
                while chunk := source.read(_COPY_CHUNK):
                    write_all(fd, chunk)
            else:
                self._copy_body(fd, member)
            if self._as_root:
                os.fchown(fd, member.uid, member.gid)
            os.fchmod(fd, stat.S_IMODE(member.mode))  # after chown, which drops setuid
            os.utime(fd, ns=_times(member))
        finally:
            os.close(fd)

    def _copy_body(self, fd: int, member: tarfile.TarInfo) -> None:
        """The body straight from the stream, in the pieces it comes in: no buffer between."""
        self._stream.seek(member.offset_data)
        left = member.size
        while left:
            chunk = self._stream.read(min(left, _COPY_CHUNK))
            if not chunk:
                raise tarfile.ReadError("unexpected end of data")
            write_all(fd, chunk)
            left -= len(chunk)

    def _set_directory(self, path: str, node: _Dir, member: tarfile.TarInfo) -> None:
        mode = stat.S_IMODE(member.mode)
        self._own(path, member)
        # Until the end of the layer a directory stays writable for us, or a non-root run could
        # not fill a 0555 directory; root is not held back by modes.
        os.chmod(path, mode if self._as_root else mode | stat.S_IRWXU)
        atime, mtime = _times(member)
        os.utime(path, ns=(atime, mtime), follow_symlinks=False)
        self._dir_times[node] = (mode, atime, mtime)

    def _own(self, path: str, member: tarfile.TarInfo) -> None:
        if self._as_root:
            os.chown(path, member.uid, member.gid, follow_symlinks=False)

    def finish(self) -> None:
        """Give directories their final modes and times: this layer's entries ask for theirs,
        earlier layers' directories opened up or changed get theirs back. The deepest go first,
        so a parent that loses u+x does so after its children are done."""
        touched = {*self._dir_times, *self._opened, *self._kept}
        nodes = sorted(touched, key=lambda node: node.depth, reverse=True)
        for node in nodes:
            if not node.alive():
                continue
            path = self._prefix + node.rel()
            try:
                if node in self._dir_times:
                    mode, atime, mtime = self._dir_times[node]
                    os.chmod(path, mode)
                    os.utime(path, ns=(atime, mtime), follow_symlinks=False)
                    continue
                if node in self._opened:
                    os.chmod(path, self._opened[node])
                if node in self._kept:
                    os.utime(path, ns=self._kept[node], follow_symlinks=False)
            except OSError as exc:
                raise ImageError(f"{self._name}: {node.rel()}: {_reason(exc)}") from exc

    # -- whiteouts ------------------------------------------------------------------------------

    def _whiteout(self, parts: list[str], member: tarfile.TarInfo) -> None:
        """`.wh.<name>` deletes `<name>` (missing is fine); `.wh..wh..opq` empties its directory."""
        if parts[-1] == OPAQUE_WHITEOUT:
            self._opaque(parts[:-1], member)
            return
        entry, victim = member.name, parts[-1][len(WHITEOUT_PREFIX) :]
        if victim in ("", ".", ".."):
            raise HostileEntry(f"{self._name}: entry '{entry}' whites out no file of its directory")
        parent = self._resolve(parts[:-1], entry, create=False)
        if parent is None:
            return  # nothing there to delete
        try:
            existing = os.lstat(self._prefix + parent.rel(victim))
        except FileNotFoundError:
            return
        self._keep_times(parent)
        self._remove(parent, victim, existing)  # a failure fails the layer (quirk Q5)

    def _opaque(self, dir_parts: list[str], member: tarfile.TarInfo) -> None:
        """Empty the marker's directory, keeping the directory itself (and its mode)."""
        node = self._top
        if dir_parts:
            parent = self._resolve(dir_parts[:-1], member.name, create=True)
            assert parent is not None  # create=True always finds or makes the parent
            base = dir_parts[-1]
            path = self._prefix + parent.rel(base)
            try:
                existing = os.lstat(path)
            except FileNotFoundError:
                self._keep_times(parent)
                os.mkdir(path, 0o755)  # quirk Q7: the original panics here
                node = parent.child(base)
            else:
                if stat.S_ISDIR(existing.st_mode):
                    node = self._enter(parent, base, existing)
                    self._keep_times(node)
                    self._empty(node, path)
                else:
                    self._keep_times(parent)
                    self._remove(parent, base, existing)
                    os.mkdir(path, 0o755)
                    node = parent.child(base)
        else:
            path = self._root
            self._empty(node, path)
        if self._as_root:
            os.chown(path, member.uid, member.gid, follow_symlinks=False)

    def _empty(self, node: _Dir, path: str) -> None:
        self._say(f"removing contents of {path}")
        for name in list(node.children):
            node.forget(name)
        self._links.clear()
        remove_contents(path)  # never follows symlinks it meets inside

    def _remove(self, parent: _Dir, name: str, existing: os.stat_result) -> None:
        path = self._prefix + parent.rel(name)
        self._say(f"removing {path}")
        if stat.S_ISDIR(existing.st_mode):
            parent.forget(name)
            self._links.clear()
            remove_tree(path)  # never follows symlinks it meets inside
        else:
            if stat.S_ISLNK(existing.st_mode):
                self._links.clear()
            os.unlink(path)

    # -- paths ----------------------------------------------------------------------------------

    def _clean(self, name: str, entry: str) -> list[str]:
        """`name`'s components, `.` and `..` resolved lexically; climbing above root is hostile."""
        parts: list[str] = []
        for part in name.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise HostileEntry(
                        f"{self._name}: entry '{entry}' climbs out of the destination"
                    )
                parts.pop()
            else:
                parts.append(part)
        return parts

    def _link_target(self, member: tarfile.TarInfo) -> str:
        entry, linkname = member.name, member.linkname
        try:
            parts = self._clean(linkname, entry)
        except HostileEntry:
            raise HostileEntry(
                f"{self._name}: entry '{entry}' links outside of target directory: {linkname}"
            ) from None
        if not parts:
            raise ImageError(f"{self._name}: {entry}: cannot hard-link to the destination")
        parent = self._resolve(parts[:-1], entry, create=False)
        try:
            if parent is None:
                raise FileNotFoundError
            path = self._prefix + parent.rel(parts[-1])
            found = os.lstat(path)
        except FileNotFoundError:
            raise ImageError(
                f"{self._name}: {entry}: hard-link target {linkname} does not exist"
            ) from None
        if stat.S_ISDIR(found.st_mode):
            raise ImageError(f"{self._name}: {entry}: hard-link target {linkname} is a directory")
        return path

    def _resolve(self, parts: list[str], entry: str, *, create: bool) -> _Dir | None:
        """The real directory that `parts` leads to, chroot-style, with lstat alone.

        Missing directories are made (0755) when `create`; otherwise a missing or non-directory
        component means None. Directories and symlinks met are remembered for the rest of the
        layer, so a path costs its own components, not those of every link on its way again;
        what links cost is counted all the same (`_MAX_SYMLINKS`, `_MAX_LINK_STEPS`), so a
        cached answer and a fresh one agree.
        """
        node = self._top
        todo: list[str | _Return] = [*reversed(parts)]
        hops = steps = 0
        while todo:
            part = todo.pop()
            if isinstance(part, _Return):
                self._links[part.link] = _Resolved(node, hops - part.hops, steps - part.steps)
                continue
            if part == "..":  # only a symlink's target brings these: the name was cleaned
                if node.parent is None:
                    raise HostileEntry(
                        f"{self._name}: entry '{entry}' goes through a symlink that leads out"
                        " of the destination"
                    )
                node = node.parent
                continue
            child = node.children.get(part)
            if child is not None:
                node = child
                continue
            known = self._links.get((node, part))
            if known is not None:
                hops, steps = self._count(hops + known.hops, steps + known.steps, entry)
                node = known.target
                continue
            path = self._prefix + node.rel(part)
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                return self._make_dirs(node, [part, *reversed(todo)], entry) if create else None
            if stat.S_ISDIR(info.st_mode):
                node = self._enter(node, part, info)
            elif stat.S_ISLNK(info.st_mode):
                target = os.readlink(path)
                components = [c for c in target.split("/") if c not in ("", ".")]
                todo.append(_Return((node, part), hops, steps))
                todo.extend(reversed(components))
                hops, steps = self._count(hops + 1, steps + len(components), entry)
                if target.startswith("/"):
                    node = self._top  # chroot-style: an absolute target starts again at the root
            elif create:
                raise ImageError(f"{self._name}: {entry}: {node.rel(part)} is not a directory")
            else:
                return None
        return node

    def _count(self, hops: int, steps: int, entry: str) -> tuple[int, int]:
        if hops > _MAX_SYMLINKS:
            raise ImageError(f"{self._name}: {entry}: too many levels of symbolic links")
        if steps > _MAX_LINK_STEPS:
            raise ImageError(
                f"{self._name}: {entry}: its symbolic links lead through more than"
                f" {_MAX_LINK_STEPS} path components"
            )
        return hops, steps

    def _enter(self, parent: _Dir, name: str, info: os.stat_result) -> _Dir:
        """The node of an existing directory; a non-root run opens it up (u+rwx) until finish."""
        node = parent.children.get(name)
        if node is not None:
            return node
        node = parent.child(name)
        mode = stat.S_IMODE(info.st_mode)
        if not self._as_root and mode & stat.S_IRWXU != stat.S_IRWXU:
            os.chmod(self._prefix + node.rel(), mode | stat.S_IRWXU)
            self._opened[node] = mode
        return node

    def _keep_times(self, node: _Dir) -> None:
        """Remember a directory's times before this layer first changes its entries."""
        if node.parent is None or node in self._kept or node in self._dir_times:
            return  # the destination's own times are not the image's
        info = os.lstat(self._prefix + node.rel())
        self._kept[node] = (info.st_atime_ns, info.st_mtime_ns)

    def _make_dirs(self, node: _Dir, missing: list[str | _Return], entry: str) -> _Dir:
        """Make the missing directories (0755, as the original) below the existing `node`."""
        names = [part for part in missing if isinstance(part, str)]
        if ".." in names:  # a symlink's target climbing out of a directory that is not there
            raise ImageError(f"{self._name}: {entry}: a symlink leads into a missing directory")
        self._keep_times(node)
        for part in names:
            os.mkdir(self._prefix + node.rel(part), 0o755)
            node = node.child(part)
        return node

    def _say(self, line: str) -> None:
        if self._debug is not None:
            self._debug(line)


def _times(member: tarfile.TarInfo) -> tuple[int, int]:
    """(atime, mtime) in nanoseconds: atime is never older than mtime, as in the original."""
    mtime = _nanoseconds(member.pax_headers.get("mtime"), member.mtime)
    atime = _nanoseconds(member.pax_headers.get("atime"), 0)
    return max(atime, mtime), mtime


def _nanoseconds(pax: str | None, fallback: float) -> int:
    """A pax time keeps its nanoseconds (tarfile's float would round them)."""
    if pax is not None:
        try:
            return int(Decimal(pax) * 1_000_000_000)
        except (InvalidOperation, ValueError):
            pass
    return int(fallback * 1_000_000_000)


def _reason(exc: OSError) -> str:
    return exc.strerror.lower() if exc.strerror else str(exc)

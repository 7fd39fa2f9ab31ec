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

A hostile entry raises `HostileEntry` before it changes anything. The checks are `lstat`
based: they assume nothing else writes into `root` while a layer is applied (the destination
of a get belongs to that get). Under that assumption there is no window between check and use.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Self

from regwatch.errors import HostileEntry, ImageError
from regwatch.image.compression import DecompressedStream, Readable, decompressed

OPAQUE_WHITEOUT = ".wh..wh..opq"
WHITEOUT_PREFIX = ".wh."

_COPY_CHUNK = 1024 * 1024
# What tarfile asks of the decompressor per read. Small on purpose: tarfile copies the rest of
# its buffer on every read, so 1 MiB here made a 53k-entry layer 2.5 times slower to parse.
_TAR_BUFFER = tarfile.RECORDSIZE
_MAX_SYMLINKS = 40  # as Linux's path walk
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
    applier = _Layer(os.fspath(root), name, as_root=as_root, on_debug=on_debug)
    with decompressed(layer, what=name) as stream:
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
    """The layer's tar, read as a stream; None for an empty blob (an empty layer, as in Go)."""
    try:
        return tarfile.open(fileobj=stream, mode="r|", bufsize=_TAR_BUFFER, tarinfo=_Header)
    except tarfile.ReadError as exc:
        # Not for zstd: its reader cannot tell a damaged frame from an empty one.
        if stream.bytes_out == 0 and stream.compression != "zstd":
            return None
        raise ImageError(f"{name}: not a tar archive: {exc}") from exc


class _Header(tarfile.TarInfo):
    """A tar header that fails loudly: tarfile takes a corrupt header mid-archive for the end."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        try:
            return super().frombuf(buf, encoding, errors)
        except tarfile.HeaderError as exc:
            # A zero block or a clean end of input is the end of the archive; anything else
            # (bad checksum, half a header) is damage.
            if type(exc).__name__ in ("EOFHeaderError", "EmptyHeaderError"):
                raise
            raise tarfile.ReadError(f"damaged header: {exc}") from exc


class _Layer:
    """The state of one layer being applied: which directories are known to be real."""

    def __init__(
        self, root: str, name: str, *, as_root: bool, on_debug: Callable[[str], None] | None
    ) -> None:
        self._root = root.rstrip("/") or "/"
        self._prefix = self._root.rstrip("/") + "/"
        self._name = name
        self._as_root = as_root
        self._debug = on_debug
        # Paths (relative to root) that are real directories, reached without a symlink; each
        # one's parents are in the set too. Dropped with everything below when removed.
        self._dirs: set[str] = {""}
        # Directory entries of this layer: their mode and times are set again at the end,
        # since entries applied later inside them change their mtime.
        self._dir_times: dict[str, tuple[int, int, int]] = {}

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
        parent = self._parent(parts[:-1], entry, create=True)
        assert parent is not None  # create=True always finds or makes the parent
        rel = f"{parent}/{parts[-1]}" if parent else parts[-1]
        path = self._prefix + rel
        self._say(f"unpacking {entry}")
        try:
            existing = os.lstat(path)
        except FileNotFoundError:
            pass
        else:
            if member.isdir() and stat.S_ISDIR(existing.st_mode):
                self._set_directory(path, rel, member)  # merge, then the entry's metadata
                return
            self._remove(path, rel, existing)  # so a file replaces a symlink, never follows it
        if link_target is not None:
            self._say(f"hardlinking to {member.linkname}")
            # Metadata is the target's (they share the inode), as in the original (quirk Q6).
            os.link(link_target, path, follow_symlinks=False)
        else:
            self._create(path, rel, member, tar)

    def _create(self, path: str, rel: str, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        if member.isreg():
            self._write_file(path, member, tar)
        elif member.isdir():
            os.mkdir(path, 0o700)
            self._set_directory(path, rel, member)
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
        source = tar.extractfile(member)
        assert source is not None  # a regular file always has a body
        fd = os.open(path, _CREATE_FLAGS, 0o600)
        with os.fdopen(fd, "wb", buffering=_COPY_CHUNK) as target:
            while chunk := source.read(_COPY_CHUNK):
                target.write(chunk)
            target.flush()
            if self._as_root:
                os.fchown(fd, member.uid, member.gid)
            os.fchmod(fd, stat.S_IMODE(member.mode))  # after chown, which drops setuid
            os.utime(fd, ns=_times(member))

    def _set_directory(self, path: str, rel: str, member: tarfile.TarInfo) -> None:
        mode = stat.S_IMODE(member.mode)
        self._own(path, member)
        # Until the end of the layer a directory stays writable for us, or a non-root run could
        # not fill a 0555 directory; root is not held back by modes.
        os.chmod(path, mode if self._as_root else mode | stat.S_IRWXU)
        atime, mtime = _times(member)
        os.utime(path, ns=(atime, mtime), follow_symlinks=False)
        self._dir_times[rel] = (mode, atime, mtime)

    def _own(self, path: str, member: tarfile.TarInfo) -> None:
        if self._as_root:
            os.chown(path, member.uid, member.gid, follow_symlinks=False)

    def finish(self) -> None:
        """Give this layer's directories the mode and times their entries asked for."""
        for rel, (mode, atime, mtime) in self._dir_times.items():
            path = self._prefix + rel
            try:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    continue
                os.chmod(path, mode)
                os.utime(path, ns=(atime, mtime), follow_symlinks=False)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ImageError(f"{self._name}: {rel}: {_reason(exc)}") from exc

    # -- whiteouts ------------------------------------------------------------------------------

    def _whiteout(self, parts: list[str], member: tarfile.TarInfo) -> None:
        """`.wh.<name>` deletes `<name>` (missing is fine); `.wh..wh..opq` empties its directory."""
        if parts[-1] == OPAQUE_WHITEOUT:
            self._opaque(parts[:-1], member)
            return
        entry, victim = member.name, parts[-1][len(WHITEOUT_PREFIX) :]
        if victim in ("", ".", ".."):
            raise HostileEntry(f"{self._name}: entry '{entry}' whites out no file of its directory")
        parent = self._parent(parts[:-1], entry, create=False)
        if parent is None:
            return  # nothing there to delete
        rel = f"{parent}/{victim}" if parent else victim
        path = self._prefix + rel
        try:
            existing = os.lstat(path)
        except FileNotFoundError:
            return
        self._remove(path, rel, existing)  # a failure fails the layer (quirk Q5)

    def _opaque(self, dir_parts: list[str], member: tarfile.TarInfo) -> None:
        """Empty the marker's directory, keeping the directory itself (and its mode)."""
        rel = ""
        if dir_parts:
            parent = self._parent(dir_parts[:-1], member.name, create=True)
            rel = f"{parent}/{dir_parts[-1]}" if parent else dir_parts[-1]
        path = self._prefix + rel if rel else self._root
        try:
            existing = os.lstat(path)
        except FileNotFoundError:
            os.mkdir(path, 0o755)  # quirk Q7: the original panics here
        else:
            if stat.S_ISDIR(existing.st_mode):
                self._empty(path, rel)
            else:
                self._remove(path, rel, existing)
                os.mkdir(path, 0o755)
        if self._as_root:
            os.chown(path, member.uid, member.gid, follow_symlinks=False)

    def _empty(self, path: str, rel: str) -> None:
        self._say(f"removing contents of {path}")
        self._forget_below(rel)
        with os.scandir(path) as found:
            children = list(found)
        for child in children:
            if child.is_dir(follow_symlinks=False):
                shutil.rmtree(child.path)  # never follows symlinks it meets inside
            else:
                os.unlink(child.path)

    def _remove(self, path: str, rel: str, existing: os.stat_result) -> None:
        self._say(f"removing {path}")
        if stat.S_ISDIR(existing.st_mode):
            self._forget(rel)
            shutil.rmtree(path)  # never follows symlinks it meets inside
        else:
            os.unlink(path)

    def _forget(self, rel: str) -> None:
        self._dirs.discard(rel)
        self._dir_times.pop(rel, None)
        self._forget_below(rel)

    def _forget_below(self, rel: str) -> None:
        if not rel:
            self._dirs = {""}
            self._dir_times.clear()
            return
        below = rel + "/"
        self._dirs = {d for d in self._dirs if not d.startswith(below)}
        for gone in [d for d in self._dir_times if d.startswith(below)]:
            del self._dir_times[gone]

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
        parent = self._parent(parts[:-1], entry, create=False)
        path = self._prefix + (f"{parent}/{parts[-1]}" if parent else parts[-1])
        try:
            if parent is None:
                raise FileNotFoundError
            found = os.lstat(path)
        except FileNotFoundError:
            raise ImageError(
                f"{self._name}: {entry}: hard-link target {linkname} does not exist"
            ) from None
        if stat.S_ISDIR(found.st_mode):
            raise ImageError(f"{self._name}: {entry}: hard-link target {linkname} is a directory")
        return path

    def _parent(self, parts: list[str], entry: str, *, create: bool) -> str | None:
        """The real directory (relative to root) that `parts` leads to, chroot-style.

        Missing directories are made (0755) when `create`; otherwise a missing or non-directory
        component means None.
        """
        key = "/".join(parts)
        if key in self._dirs:
            return key
        known = len(parts) - 1
        while known > 0 and "/".join(parts[:known]) not in self._dirs:
            known -= 1
        return self._walk(parts[:known], parts[known:], entry, create=create)

    def _walk(self, real: list[str], rest: list[str], entry: str, *, create: bool) -> str | None:
        """Resolve `rest` below `real` with lstat alone; directories are made only at the end."""
        todo = rest[::-1]
        links = 0
        while todo:
            part = todo.pop()
            if part == "..":  # only a symlink's target brings these: the name was cleaned
                if not real:
                    raise HostileEntry(
                        f"{self._name}: entry '{entry}' goes through a symlink that leads out"
                        " of the destination"
                    )
                real.pop()
                continue
            if part in ("", "."):
                continue
            rel = "/".join([*real, part])
            try:
                mode = os.lstat(self._prefix + rel).st_mode
            except FileNotFoundError:
                return self._make_dirs(real, [part, *reversed(todo)], entry) if create else None
            if stat.S_ISDIR(mode):
                real.append(part)
                if not links:
                    self._dirs.add(rel)
            elif stat.S_ISLNK(mode):
                links += 1
                if links > _MAX_SYMLINKS:
                    raise ImageError(f"{self._name}: {entry}: too many levels of symbolic links")
                target = os.readlink(self._prefix + rel)
                if target.startswith("/"):
                    real = []  # chroot-style: an absolute target starts again at the root
                todo.extend(reversed(target.split("/")))
            elif create:
                raise ImageError(f"{self._name}: {entry}: {rel} is not a directory")
            else:
                return None
        return "/".join(real)

    def _make_dirs(self, real: list[str], missing: list[str], entry: str) -> str:
        """Make the missing directories (0755, as the original) below the existing `real`."""
        names = [part for part in missing if part not in ("", ".")]
        if ".." in names:  # a symlink's target climbing out of a directory that is not there
            raise ImageError(f"{self._name}: {entry}: a symlink leads into a missing directory")
        for part in names:
            real.append(part)
            os.mkdir(self._prefix + "/".join(real), 0o755)
        return "/".join(real)

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

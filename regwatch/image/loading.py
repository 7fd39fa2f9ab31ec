"""Loading what `out` pushes from a path: a directory is an OCI image layout (`layout`), a file
a `docker save` tarball (`tarball`) (resource spec §6.6.2)."""

from __future__ import annotations

import stat
from pathlib import Path

from regwatch.errors import ConfigError, ImageError
from regwatch.image.files import file_kind
from regwatch.image.layout import load_layout
from regwatch.image.pushes import LoadedImage
from regwatch.image.tarball import load_tarball


def load_image(path: Path) -> LoadedImage:
    """A directory is an OCI image layout; a file is a `docker save` tarball (spec §6.6.2).

    Raises `ConfigError` when nothing is at `path` or it is neither a directory nor a regular
    file (a FIFO would block the read), `ImageError` when its content cannot be pushed; layout
    errors read `loading <path> as OCI layout: …`. Only regular files are ever opened.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file or directory") from None
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        try:
            return load_layout(path)
        except ImageError as exc:
            raise ImageError(f"loading {path} as OCI layout: {exc}") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{path}: {file_kind(mode)}, not a tarball or an OCI layout directory")
    try:
        return load_tarball(path)
    except OSError as exc:
        raise ImageError(f"reading {path}: {exc.strerror or exc}") from None

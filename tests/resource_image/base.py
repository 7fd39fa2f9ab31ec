"""The image test's base: Debian bookworm from debootstrap (Docker Hub is out of reach).

debootstrap takes one to two minutes, so its root file system is kept as a tarball under
`~/.cache/regwatch-tests` (or `$XDG_CACHE_HOME`) and made again once it is a week old.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
MAX_AGE_SECONDS = 7 * 24 * 3600
FALLBACK_MIRROR = "http://deb.debian.org/debian"


def debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The machine's Debian mirror: the first `debian` URI of its apt sources."""
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            words = line.split("#", 1)[0].split()
            if words[:1] == ["URIs:"]:
                candidates = words[1:]
            elif words[:1] == ["deb"]:
                candidates = [w for w in words[1:] if "://" in w][:1]
            else:
                continue
            for uri in candidates:
                if uri.rstrip("/").endswith("/debian"):
                    return uri.rstrip("/")
    return FALLBACK_MIRROR


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "regwatch-tests"


def base_tarball(debootstrap: str, workdir: Path) -> Path:
    """A tarball of a minbase bookworm root with Python, from the cache or debootstrap."""
    key = hashlib.sha256(" ".join((SUITE, *PACKAGES)).encode()).hexdigest()[:12]
    tarball = cache_dir() / f"debootstrap-{SUITE}-{key}.tar"
    if tarball.exists() and time.time() - tarball.stat().st_mtime < MAX_AGE_SECONDS:
        return tarball
    root = workdir / "debootstrap-root"
    done = subprocess.run(
        [
            debootstrap,
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(root),
            debian_mirror(),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"debootstrap failed: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    # The downloaded packages and the index are apt's caches, not part of a base image.
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (root / cache).glob("*"):
            if entry.is_file():
                entry.unlink()
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial")
    subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True, timeout=300)
    partial.replace(tarball)
    shutil.rmtree(root, ignore_errors=True)
    return tarball

"""The image test's base: Debian bookworm from debootstrap (Docker Hub is out of reach).

debootstrap takes one to two minutes, so its root file system is kept as a tarball under
`~/.cache/regwatch-tests` (or `$XDG_CACHE_HOME`) and made again once it is a week old. When the
cache cannot serve, it runs inside the image build, which the suite starts as soon as it has
collected the image test (`build.start_early`), so it overlaps the tests that run before it.
"""

from __future__ import annotations

import atexit
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


def _cached() -> Path:
    key = hashlib.sha256(" ".join((SUITE, *PACKAGES)).encode()).hexdigest()[:12]
    return cache_dir() / f"debootstrap-{SUITE}-{key}.tar"


def _fresh(tarball: Path) -> bool:
    return tarball.exists() and time.time() - tarball.stat().st_mtime < MAX_AGE_SECONDS


def _debootstrap(debootstrap: str, root: Path, log: Path) -> None:
    """debootstrap into `root`; killed should the session end first (the build runs in a
    daemon thread)."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(root),
                debian_mirror(),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    atexit.register(_stop, process)
    code = process.wait(timeout=900)
    assert code == 0, f"debootstrap failed: {log.read_text(errors='replace')[-3000:]}"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


def base_tarball(debootstrap: str, workdir: Path) -> Path:
    """A tarball of a minbase bookworm root with Python, from the cache or debootstrap."""
    tarball = _cached()
    if _fresh(tarball):
        return tarball
    root = workdir / "debootstrap-root"
    _debootstrap(debootstrap, root, workdir / "debootstrap.log")
    # The downloaded packages and the index are apt's caches, not part of a base image.
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (root / cache).glob("*"):
            if entry.is_file():
                entry.unlink()
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(f".{os.getpid()}.partial")
    subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True, timeout=300)
    partial.replace(tarball)
    shutil.rmtree(root, ignore_errors=True)
    return tarball

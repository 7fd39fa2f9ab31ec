"""The resource image built for real, as a working container: shared by the `image` test and
`bench/image.py`.

The base is Debian from debootstrap (`base.py`) pushed to a local registry, so the build pulls
`127.0.0.1:PORT/…` like any other base; `scripts/build-image` builds with buildah, and
`buildah run --isolation chroot` shares the host's network, so the steps reach the registry.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.resource_image.base import base_tarball

ROOT = Path(__file__).resolve().parents[2]
TAG = "localhost/regwatch:image-test"
MOUNT = "/work"


class BuildFailed(AssertionError):
    """A buildah command or the build script failed; the message ends with its stderr."""


@dataclass(frozen=True)
class Buildah:
    """buildah with a storage root of its own, chroot isolation."""

    tool: str
    root: Path

    def command(self, *args: str) -> list[str]:
        return [
            self.tool,
            "--root",
            str(self.root / "storage"),
            "--runroot",
            str(self.root / "run"),
            "--storage-driver",
            "overlay",
            *args,
        ]

    def __call__(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            self.command(*args), capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise BuildFailed(f"buildah {args[0]} failed: {done.stderr[-3000:]}")
        return done.stdout


@dataclass(frozen=True)
class Container:
    """A working container of the built image, with a host directory mounted at /work."""

    buildah: Buildah
    name: str
    shared: Path

    def run(
        self, *argv: str, stdin: str | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        settings = [f"--env={name}={value}" for name, value in (env or {}).items()]
        command = self.buildah.command(
            "run",
            "--isolation",
            "chroot",
            "--volume",
            f"{self.shared}:{MOUNT}",
            *settings,
            self.name,
            "--",
            *argv,
        )
        return subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=300, check=False
        )

    def step(self, name: str, request: Mapping[str, Any], *args: str) -> Any:
        done = self.run(f"/opt/resource/{name}", *args, stdin=json.dumps(request))
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def build_container(buildah: Buildah, debootstrap: str, registry: str, workdir: Path) -> Container:
    """Push a debootstrap base to `registry` (plain HTTP), build the image on it with
    `scripts/build-image`, and open a working container of it."""
    tarball = base_tarball(debootstrap, workdir)
    base = f"{registry}/base/debian:bookworm"
    draft = buildah("from", "scratch").strip()
    buildah("add", draft, str(tarball), "/")
    buildah("config", "--env", "PATH=/usr/local/bin:/usr/bin:/bin", "--cmd", "/bin/sh", draft)
    buildah("commit", "--quiet", "--tls-verify=false", draft, f"docker://{base}")
    buildah("rm", draft)
    built = subprocess.run(
        [
            str(ROOT / "scripts" / "build-image"),
            "--tag",
            TAG,
            "--base-image",
            base,
            "--insecure-base",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={
            **os.environ,
            "PYTHON": sys.executable,
            "REGWATCH_IMAGE_BUILDER": "buildah",
            "REGWATCH_BUILDAH_ROOT": str(buildah.root),
        },
    )
    if built.returncode != 0 or built.stdout != f"{TAG}\n":
        raise BuildFailed(f"scripts/build-image failed: {built.stderr[-4000:]}")
    name = buildah("from", "--quiet", "--pull-never", TAG).strip()
    return Container(buildah, name, workdir)


def remove(buildah: Buildah) -> None:
    """Every container and image of this storage root, and the root itself."""
    buildah("rm", "--all")
    buildah("rmi", "--all", "--force")
    shutil.rmtree(buildah.root, ignore_errors=True)

"""The resource image built for real, as a working container: shared by the `image` test and
`bench/image.py`.

The base is Debian from debootstrap (`base.py`) pushed to a local registry, so the build pulls
`127.0.0.1:PORT/…` like any other base; `scripts/build-image` builds with buildah, and
`buildah run --isolation chroot` shares the host's network, so the steps reach the registry.

The build takes one to three minutes (debootstrap on a fresh machine, downloading the wheels,
installing them in the image), nearly all of it waiting on the network or on one core, so the
suite starts it in a thread as soon as it has collected the image test (`start_early`), on a
registry of its own, and the image test takes the result when its turn comes (`early_build`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.registries import start_plain_registry
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


class EarlyBuild:
    """`build_container` in a thread of its own, on a registry of its own (stopped once the
    image is built: the container comes from buildah's storage, not from the registry)."""

    def __init__(self, buildah: Buildah, debootstrap: str, registry_bin: str) -> None:
        self.buildah = buildah
        self._debootstrap = debootstrap
        self._registry_bin = registry_bin
        self._container: Container | None = None
        self._failure: BaseException | None = None
        self.work = Path(tempfile.mkdtemp(prefix="regwatch-image-build-"))
        self._thread = threading.Thread(target=self._build, name="image-build", daemon=True)
        self._thread.start()

    def _build(self) -> None:
        (self.work / "registry").mkdir()
        try:
            registry = start_plain_registry(self._registry_bin, self.work / "registry")
            try:
                self._container = build_container(
                    self.buildah, self._debootstrap, registry.host, self.work
                )
            finally:
                registry.stop()
        except BaseException as exc:  # handed to the test that needs the image
            self._failure = exc

    def result(self, timeout: float = 1200) -> Container:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise BuildFailed(f"the image build did not end within {timeout:.0f} s")
        if self._failure is not None:
            raise self._failure
        assert self._container is not None
        return self._container

    def close(self) -> None:
        """Remove the image, its containers and storage, and the build's directory."""
        remove(self.buildah)
        shutil.rmtree(self.work, ignore_errors=True)


_early: EarlyBuild | None = None


def start_early() -> None:
    """Start the build now, behind the other tests, when this machine can build at all
    (root, buildah, debootstrap, docker-registry); otherwise the image test says what is
    missing when it runs."""
    global _early  # noqa: PLW0603 -- one early build per session
    tools = [shutil.which(name) for name in ("buildah", "debootstrap", "docker-registry")]
    if _early is None and os.geteuid() == 0 and all(tools):
        buildah, debootstrap, registry = (str(tool) for tool in tools)
        root = Path(tempfile.mkdtemp(prefix="regwatch-buildah-"))
        _early = EarlyBuild(Buildah(buildah, root), debootstrap, registry)


def early_build() -> EarlyBuild | None:
    """The build `start_early` started, if it did."""
    return _early

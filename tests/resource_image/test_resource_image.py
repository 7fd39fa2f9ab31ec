"""The resource image built for real (scripts/build-image, buildah) and the steps run inside it.

The base is Debian from debootstrap (tests/resource_image/base.py) pushed to the suite's
registry, so the build pulls `127.0.0.1:PORT/…` like any other base. One build per session;
`buildah run --isolation chroot` shares the host's network, so the steps reach the registry.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from regwatch import __version__
from regwatch.refs import Reference, Repository
from tests import images
from tests.cloud import start_moto
from tests.e2e.steps import client_for, regwatch_command, source_for
from tests.registries import RegistryServer, require_tool
from tests.resource_image.base import base_tarball

pytestmark = pytest.mark.image

ROOT = Path(__file__).resolve().parents[2]
TAG = "localhost/regwatch:image-test"
MOUNT = "/work"


@dataclass(frozen=True)
class Buildah:
    """buildah with a storage root of its own, chroot isolation."""

    tool: str
    root: Path

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 300) -> str:
        done = subprocess.run(
            [
                self.tool,
                "--root",
                str(self.root / "storage"),
                "--runroot",
                str(self.root / "run"),
                "--storage-driver",
                "overlay",
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"buildah {args[0]} failed: {done.stderr[-3000:]}"
        return done.stdout


@dataclass(frozen=True)
class Container:
    """A working container of the built image, with a host directory mounted at /work."""

    buildah: Buildah
    name: str
    shared: Path
    base: str

    def run(
        self, *argv: str, stdin: str | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        settings = [f"--env={name}={value}" for name, value in (env or {}).items()]
        command = [
            self.buildah.tool,
            "--root",
            str(self.buildah.root / "storage"),
            "--runroot",
            str(self.buildah.root / "run"),
            "--storage-driver",
            "overlay",
            "run",
            "--isolation",
            "chroot",
            "--volume",
            f"{self.shared}:{MOUNT}",
            *settings,
            self.name,
            "--",
            *argv,
        ]
        return subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=300, check=False
        )

    def step(self, name: str, request: Mapping[str, Any], *args: str) -> Any:
        done = self.run(f"/opt/resource/{name}", *args, stdin=json.dumps(request))
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def _needs_root() -> None:
    if os.geteuid() == 0:
        return
    message = "debootstrap and buildah's chroot isolation need root"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must run the image test, not skip it")
    pytest.skip(message)


@pytest.fixture(scope="session")
def container(
    plain_registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Container]:
    """The image built once from a debootstrap base in the suite's registry, as a container."""
    buildah = Buildah(require_tool("buildah"), tmp_path_factory.mktemp("buildah"))
    debootstrap = require_tool("debootstrap")
    _needs_root()
    workdir = tmp_path_factory.mktemp("image")
    tarball = base_tarball(debootstrap, workdir)
    base = f"{plain_registry.host}/base/debian:bookworm"
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
    assert built.returncode == 0, built.stderr[-4000:]
    assert built.stdout == f"{TAG}\n"
    name = buildah("from", "--quiet", "--pull-never", TAG).strip()
    try:
        yield Container(buildah, name, workdir, base)
    finally:
        buildah("rm", "--all")
        buildah("rmi", "--all", "--force")
        shutil.rmtree(buildah.root, ignore_errors=True)


def _pushed(server: RegistryServer, name: str) -> tuple[str, images.Image]:
    repository = f"{server.host}/image-test/{uuid.uuid4().hex[:10]}"
    item = images.image(name)
    images.push(
        client_for(server), Repository(server.host, repository.split("/", 1)[1]), "1.0", item
    )
    return repository, item


def test_regwatch_is_on_path_and_says_its_version(container: Container) -> None:
    done = container.run("regwatch", "--version")

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"regwatch {__version__}"


def test_check_in_the_image_lists_the_registry_s_version(
    container: Container, plain_registry: RegistryServer
) -> None:
    repository, item = _pushed(plain_registry, "checked")

    answer = container.step("check", {"source": source_for(plain_registry, repository, tag="1.0")})

    assert answer == [{"tag": "1.0", "digest": item.digest}]


def test_in_fetches_a_rootfs_and_out_pushes_an_oci_tarball(
    container: Container, plain_registry: RegistryServer
) -> None:
    repository, item = _pushed(plain_registry, "fetched")
    version = {"tag": "1.0", "digest": item.digest}
    source = source_for(plain_registry, repository)

    got = container.step("in", {"source": source, "version": version}, f"{MOUNT}/get-rootfs")
    tarball = container.step(
        "in",
        {"source": source, "version": version, "params": {"format": "oci"}},
        f"{MOUNT}/put/fetched",
    )
    target = f"{plain_registry.host}/image-test/{uuid.uuid4().hex[:10]}"
    put = container.step(
        "out",
        {
            "source": source_for(plain_registry, target, tag="pushed"),
            "params": {"image": "fetched/image.tar"},
        },
        f"{MOUNT}/put",
    )

    assert got["version"] == version
    assert (container.shared / "get-rootfs" / "rootfs" / "etc" / "name").read_text() == "fetched"
    assert tarball["version"] == version
    registry = client_for(plain_registry)
    pushed = registry.resolve(
        Reference(Repository(plain_registry.host, target.split("/", 1)[1]), tag="pushed")
    )
    assert pushed is not None
    assert put["version"] == {"tag": "pushed", "digest": pushed.digest}


def test_the_image_holds_no_installer_and_a_store_volume(container: Container) -> None:
    done = container.run(
        "sh",
        "-c",
        "for tool in cc gcc pip pip3; do command -v $tool; done; "
        'ls /opt/regwatch/bin; ls -d /root/.cache/pip 2>/dev/null; echo "state=$XDG_STATE_HOME"; '
        "test -s /etc/ssl/certs/ca-certificates.crt && echo ca-ok",
    )

    lines = done.stdout.splitlines()
    assert "state=/var/lib/regwatch" in lines
    assert "ca-ok" in lines
    assert not any(line.endswith(("/cc", "/gcc", "/pip", "/pip3")) for line in lines), lines
    assert "pip" not in lines
    assert "/root/.cache/pip" not in lines


# An ECR login through a role chain, in the image's venv: STS and ECR still have their models.
ECR_LOGIN = """
from regwatch.registry.ecr import EcrLogin, EcrSettings
login = EcrLogin(EcrSettings("eu-west-1", "AKIAEXAMPLE", "secret",
                             role_arns=("arn:aws:iam::222222222222:role/reader",)))
print(login.registry(), login.current().username)
"""


def test_the_image_logs_in_to_ecr_and_speaks_to_azure(
    container: Container, tmp_path_factory: pytest.TempPathFactory
) -> None:
    moto = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        ecr = container.run(
            "/opt/regwatch/bin/python",
            "-c",
            ECR_LOGIN,
            env={
                "AWS_ENDPOINT_URL_ECR": moto.url,
                "AWS_ENDPOINT_URL_STS": moto.url,
                "AWS_EC2_METADATA_DISABLED": "true",
            },
        )
    finally:
        moto.stop()
    azure = container.run(
        "/opt/regwatch/bin/python", "-c", "import azure.identity; print('azure-identity')"
    )

    assert ecr.returncode == 0, ecr.stderr
    assert ecr.stdout.split() == ["222222222222.dkr.ecr.eu-west-1.amazonaws.com", "AWS"]
    assert azure.stdout.strip() == "azure-identity", azure.stderr


STARTS = 7

# Runs `check` STARTS times with the request on stdin, prints the wall times as JSON.
TIMER = """
import json, subprocess, sys, time
command, request = json.loads(sys.argv[1]), sys.argv[2]
times = []
for _ in range(int(sys.argv[3])):
    start = time.perf_counter()
    subprocess.run(command, input=request, text=True, capture_output=True, check=True)
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def test_check_starts_as_fast_inside_the_image_as_outside(
    container: Container, plain_registry: RegistryServer
) -> None:
    repository, _ = _pushed(plain_registry, "timed")
    request = json.dumps({"source": source_for(plain_registry, repository, tag="1.0")})
    inside = container.run(
        "/opt/regwatch/bin/python",
        "-c",
        TIMER,
        json.dumps(["/opt/resource/check"]),
        request,
        str(STARTS),
    )
    assert inside.returncode == 0, inside.stderr
    outside = subprocess.run(
        [
            sys.executable,
            "-c",
            TIMER,
            json.dumps([*regwatch_command(), "check"]),
            request,
            str(STARTS),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        # The image's regwatch has its .pyc files; give the one outside the same chance.
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    )

    inside_s = statistics.median(json.loads(inside.stdout)[1:])
    outside_s = statistics.median(json.loads(outside.stdout)[1:])
    print(f"check start-up: inside the image {inside_s:.3f} s, outside {outside_s:.3f} s")
    assert inside_s <= outside_s * 1.5 + 0.15


def test_the_image_weighs_little_over_its_base(container: Container) -> None:
    done = container.run("sh", "-c", "du -sxk /; du -sxk /opt/regwatch")

    assert done.returncode == 0, done.stderr
    whole, venv = (int(line.split()[0]) * 1024 for line in done.stdout.splitlines())
    print(f"image {whole / 1e6:.0f} MB on disk, of which /opt/regwatch {venv / 1e6:.0f} MB")
    assert venv < 175e6

"""The resource image built for real (scripts/build-image, buildah; see `build.py`) once per
session on the suite's registry, and the steps run inside it. How fast `check` starts inside it
is measured by `bench/image.py`, not here."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from regwatch import __version__
from regwatch.refs import Reference, Repository
from tests import images
from tests.cloud import start_moto
from tests.e2e.steps import client_for, source_for
from tests.registries import RegistryServer, require_tool
from tests.resource_image.build import (
    MOUNT,
    Buildah,
    Container,
    build_container,
    early_build,
    remove,
)

pytestmark = pytest.mark.image


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
    """The image built once from a debootstrap base, as a container: taken from the build the
    suite started when collection ended, else built here on the suite's registry."""
    early = early_build()
    if early is not None:
        try:
            yield early.result()
        finally:
            early.close()
        return
    buildah = Buildah(require_tool("buildah"), tmp_path_factory.mktemp("buildah"))
    debootstrap = require_tool("debootstrap")
    _needs_root()
    try:
        yield build_container(
            buildah, debootstrap, plain_registry.host, tmp_path_factory.mktemp("image")
        )
    finally:
        remove(buildah)


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


def test_the_image_weighs_little_over_its_base(container: Container) -> None:
    done = container.run("sh", "-c", "du -sxk /; du -sxk /opt/regwatch")

    assert done.returncode == 0, done.stderr
    whole, venv = (int(line.split()[0]) * 1024 for line in done.stdout.splitlines())
    print(f"image {whole / 1e6:.0f} MB on disk, of which /opt/regwatch {venv / 1e6:.0f} MB")
    assert venv < 175e6

"""`load_image` on what skopeo writes from a real registry: docker archives and OCI layouts.

What skopeo 1.9 does here, seen on these machines:
* `docker-archive:` keeps the config verbatim but stores every layer *uncompressed*
  (`<diff id>.tar`, plus a legacy `<id>/layer.tar` symbolic link to it). Loading it must gzip
  the layers again, so the pushed digests cannot be the registry's: only the config and the
  layer contents survive. Digest parity (quirk Q15) is for tarballs whose layers are still
  compressed, as `in` writes them; that is checked with blobs skopeo fetched verbatim (`dir:`).
* `oci:DIR` of one image wraps its manifest, unchanged, in an `index.json` of its own and
  writes no `single-image-digest`, so the layout is pushed as that index.
* `--all` keeps an index's bytes: the layout's only entry is the index, which is unwrapped.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from regwatch.image import mediatypes as mt
from regwatch.image.loading import load_image
from regwatch.image.mediatypes import DOCKER_CONFIG, DOCKER_LAYER_GZIP
from regwatch.image.pushes import BlobSource
from regwatch.net import Transport
from regwatch.refs import Repository
from regwatch.registry.client import RegistryClient
from tests import images
from tests.images import Blob
from tests.registries import RegistryServer, require_tool


def skopeo(*args: str) -> bytes:
    result = subprocess.run(
        [require_tool("skopeo"), *args], capture_output=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"skopeo {' '.join(args)}: {result.stderr.decode()}"
    return result.stdout


@pytest.fixture(scope="module")
def client(plain_registry: RegistryServer) -> Iterator[RegistryClient]:
    transport = Transport()
    try:
        yield RegistryClient(plain_registry.host, transport)
    finally:
        transport.close()


def pushed(
    client: RegistryClient, server: RegistryServer, item: images.Image | images.Index
) -> str:
    """Push `item` to a fresh repository; the `docker://` reference skopeo reads it from."""
    repository = Repository(server.host, f"loading/{uuid.uuid4().hex[:10]}")
    digest = images.push(client, repository, "v1", item)
    assert digest == item.digest
    return f"docker://{server.host}/{repository.path}:v1"


def copy(source: str, destination: str, *extra: str) -> None:
    skopeo("copy", "--quiet", "--src-tls-verify=false", *extra, source, destination)


def read_blob(blob: BlobSource) -> bytes:
    with blob.open() as reader:
        return reader.read()


def go_layout(image: images.Image) -> images.Image:
    """The same image with its manifest written as go-containerregistry writes one."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST_V2,
        "config": {
            "mediaType": DOCKER_CONFIG,
            "size": len(image.config.data),
            "digest": image.config.digest,
        },
        "layers": [
            {"mediaType": DOCKER_LAYER_GZIP, "size": len(layer.data), "digest": layer.digest}
            for layer in image.layers
        ],
    }
    body = json.dumps(manifest, separators=(",", ":")).encode()
    return images.Image(
        image.config, image.layers, Blob(mt.DOCKER_MANIFEST_V2, body), image.platform
    )


def docker_save_tarball(blobs_dir: Path, path: Path) -> Path:
    """A `docker save` tarball of the image skopeo copied to `dir:` with its blobs verbatim."""
    manifest = json.loads((blobs_dir / "manifest.json").read_bytes())
    config = manifest["config"]["digest"].removeprefix("sha256:")
    layers = [layer["digest"].removeprefix("sha256:") for layer in manifest["layers"]]
    entries = {f"{config}.json": config, **{f"{hex_}.tar.gz": hex_ for hex_ in layers}}
    save = [{"Config": f"{config}.json", "RepoTags": [], "Layers": [f"{h}.tar.gz" for h in layers]}]
    with tarfile.open(path, mode="w") as tar:
        for name, hex_digest in entries.items():
            tar.add(blobs_dir / hex_digest, arcname=name)
        data = json.dumps(save).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("layout", ["go", "suite"])
def test_a_tarball_with_the_registrys_gzip_layers_keeps_the_digest_when_the_layout_is_gos(
    client: RegistryClient, plain_registry: RegistryServer, tmp_path: Path, layout: str
) -> None:
    """Quirk Q15: the rebuilt manifest is go-containerregistry's, byte for byte.

    The suite's own manifests are `json.dumps` with spaces and `digest` before `size`: for
    those the blobs match but the rebuilt manifest (and so the pushed digest) differs.
    """
    image = images.image(f"parity-{layout}", docker=True)
    if layout == "go":
        image = go_layout(image)
    source = pushed(client, plain_registry, image)
    blobs_dir = tmp_path / "dir"
    copy(source, f"dir:{blobs_dir}")
    registry_manifest = (blobs_dir / "manifest.json").read_bytes()
    assert registry_manifest == image.manifest.data

    with load_image(docker_save_tarball(blobs_dir, tmp_path / "image.tar")) as loaded:
        assert [(b.descriptor.digest, b.descriptor.size) for b in loaded.blobs] == [
            (blob.digest, len(blob.data)) for blob in (image.config, *image.layers)
        ]
        assert [read_blob(b) for b in loaded.blobs] == [image.config.data, image.layers[0].data]
        if layout == "go":
            assert loaded.top.body == registry_manifest
            assert loaded.top.digest == image.digest
        else:
            assert loaded.top.body == go_layout(image).manifest.data
            assert loaded.top.digest != image.digest


def test_a_skopeo_docker_archive_is_loaded_with_its_layers_gzipped_again(
    client: RegistryClient, plain_registry: RegistryServer, tmp_path: Path
) -> None:
    image = go_layout(images.image("archive", docker=True))
    source = pushed(client, plain_registry, image)
    archive = tmp_path / "image.tar"
    copy(source, f"docker-archive:{archive}")
    with tarfile.open(archive) as tar:
        assert any(member.issym() for member in tar)  # the legacy layer.tar link

    with load_image(archive) as loaded:
        config, *layers = loaded.blobs
        assert (config.descriptor.digest, config.descriptor.media_type) == (
            image.config.digest,
            DOCKER_CONFIG,
        )
        assert read_blob(config) == image.config.data
        assert [gzip.decompress(read_blob(layer)) for layer in layers] == [
            gzip.decompress(layer.data) for layer in image.layers
        ]
        assert {layer.descriptor.media_type for layer in layers} == {DOCKER_LAYER_GZIP}
        assert json.loads(loaded.top.body)["layers"] == [
            {
                "mediaType": DOCKER_LAYER_GZIP,
                "size": layer.descriptor.size,
                "digest": layer.descriptor.digest,
            }
            for layer in layers
        ]
        # Re-gzipped by another encoder than the suite's: a new layer digest, a new image.
        assert [layer.descriptor.digest for layer in layers] != [
            layer.digest for layer in image.layers
        ]
        assert loaded.top.digest != image.digest
        assert loaded.manifests == (loaded.top,)


def test_an_oci_layout_of_one_image_is_pushed_as_the_index_skopeo_wrote(
    client: RegistryClient, plain_registry: RegistryServer, tmp_path: Path
) -> None:
    image = images.image("oci-single")
    source = pushed(client, plain_registry, image)
    layout = tmp_path / "layout"
    copy(source, f"oci:{layout}:v1")
    assert not (layout / "single-image-digest").exists()
    index_json = (layout / "index.json").read_bytes()

    loaded = load_image(layout)
    assert loaded.top.body == index_json
    assert loaded.top.digest == images.sha256(index_json)
    assert loaded.top.media_type == mt.OCI_INDEX
    child, top = loaded.manifests
    assert top == loaded.top
    assert (child.digest, child.media_type, child.body) == (
        image.digest,
        mt.OCI_MANIFEST,
        image.manifest.data,
    )
    assert [(b.descriptor.digest, b.descriptor.media_type) for b in loaded.blobs] == [
        (blob.digest, blob.media_type) for blob in (image.config, *image.layers)
    ]


def test_an_oci_layout_marked_like_in_writes_it_pushes_the_image_itself(
    client: RegistryClient, plain_registry: RegistryServer, tmp_path: Path
) -> None:
    image = images.image("oci-marked")
    source = pushed(client, plain_registry, image)
    layout = tmp_path / "layout"
    copy(source, f"oci:{layout}:v1")
    (layout / "single-image-digest").write_text(image.digest)

    loaded = load_image(layout)
    assert (loaded.top.digest, loaded.top.media_type) == (image.digest, mt.OCI_MANIFEST)
    assert loaded.manifests == (loaded.top,)


def test_an_index_copied_with_all_keeps_its_digest(
    client: RegistryClient, plain_registry: RegistryServer, tmp_path: Path
) -> None:
    index = images.index(
        [
            images.image("multi-amd64", architecture="amd64"),
            images.image("multi-arm64", architecture="arm64"),
        ]
    )
    source = pushed(client, plain_registry, index)
    layout = tmp_path / "layout"
    copy(source, f"oci:{layout}:v1", "--all")
    wrapper = json.loads((layout / "index.json").read_bytes())
    assert [entry["digest"] for entry in wrapper["manifests"]] == [index.digest]

    loaded = load_image(layout)
    assert (loaded.top.digest, loaded.top.media_type) == (index.digest, mt.OCI_INDEX)
    assert loaded.top.body == index.manifest.data
    assert [(m.digest, m.media_type) for m in loaded.manifests] == [
        *((image.digest, mt.OCI_MANIFEST) for image in index.images),
        (index.digest, mt.OCI_INDEX),
    ]
    assert {b.descriptor.digest for b in loaded.blobs} == {
        blob.digest for image in index.images for blob in (image.config, *image.layers)
    }

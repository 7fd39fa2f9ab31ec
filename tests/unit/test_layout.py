"""`in` formats `oci` (image.tar) and `oci-layout` (spec §6.3), written from an in-memory store."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from regwatch.errors import DigestMismatch, ImageError, UnsupportedMedia
from regwatch.image import mediatypes as mt
from regwatch.image.digests import BlobReader
from regwatch.image.layout import OCI_LAYOUT_CONTENT, write_oci_layout
from regwatch.image.model import Descriptor
from regwatch.image.tarball import layer_file_name, write_image_tarball
from tests.images import Blob, Image, MemoryBlobs, sha256

GZIP = mt.OCI_LAYER_GZIP
ZSTD = mt.OCI_LAYER_ZSTD
OCI_TAR = mt.OCI_LAYER_TAR
DOCKER_TAR = mt.DOCKER_LAYER_TAR
DOCKER_GZIP = mt.DOCKER_LAYER_GZIP
OCI_CONFIG = mt.OCI_CONFIG
REPO_TAG = "index.docker.io/library/alpine:latest"


def image(
    name: str,
    layers: Sequence[Blob] | None = None,
    *,
    manifest_type: str = mt.OCI_MANIFEST,
    config_type: str = OCI_CONFIG,
) -> Image:
    body = tuple(layers) if layers is not None else (Blob(GZIP, f"layer of {name}".encode()),)
    config = Blob(config_type, json.dumps({"name": name, "os": "linux"}).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in body],
    }
    return Image(config, body, Blob(manifest_type, json.dumps(manifest).encode()))


def index(children: Sequence[Image | Blob], media_type: str = mt.OCI_INDEX) -> Blob:
    manifests = [(c.manifest if isinstance(c, Image) else c).descriptor() for c in children]
    body = {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}
    return Blob(media_type, json.dumps(body).encode())


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def tree(directory: Path) -> dict[str, bytes]:
    """Every regular file below `directory`, by relative path."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


# -- image.tar ----------------------------------------------------------------------------------


def member_bytes(archive: tarfile.TarFile, name: str) -> bytes:
    member = archive.extractfile(name)
    assert member is not None, name
    return member.read()


@pytest.mark.parametrize(
    ("media_type", "suffix"),
    [
        (GZIP, ".tar.gz"),
        (ZSTD, ".tar.zst"),
        (OCI_TAR, ".tar"),
        (DOCKER_TAR, ".tar"),
        (DOCKER_GZIP, ".tar.gz"),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", ".tar.gz"),
        ("application/vnd.in-toto+json", ".tar.gz"),
    ],
)
def test_layer_file_names_follow_the_media_type(media_type: str, suffix: str) -> None:
    digest = sha256(b"x")
    assert layer_file_name(digest, media_type) == digest.removeprefix("sha256:") + suffix


@pytest.mark.parametrize("digest", ["sha256:abc", "sha256:../../etc/passwd", "md5:" + "0" * 32])
def test_layer_file_name_refuses_a_malformed_digest(digest: str) -> None:
    with pytest.raises(ImageError, match="invalid digest"):
        layer_file_name(digest, GZIP)


def test_tarball_holds_config_layers_and_manifest_in_order(tmp_path: Path) -> None:
    gz, zst, tar, docker_tar, docker_gz = (
        Blob(GZIP, b"gzip layer"),
        Blob(ZSTD, b"zstd layer"),
        Blob(OCI_TAR, b"plain layer"),
        Blob(DOCKER_TAR, b"docker plain layer"),
        Blob(DOCKER_GZIP, b"docker gzip layer"),
    )
    img = image("all", [gz, zst, tar, gz, docker_tar, docker_gz, zst])
    store = MemoryBlobs(img.blobs())
    store.write_tarball(tmp_path / "image.tar", img, REPO_TAG)

    assert os.listdir(tmp_path) == ["image.tar"]
    names = [
        img.config.digest,
        f"{gz.hex}.tar.gz",
        f"{zst.hex}.tar.zst",
        f"{tar.hex}.tar",
        f"{docker_tar.hex}.tar",
        f"{docker_gz.hex}.tar.gz",
        "manifest.json",
    ]
    with tarfile.open(tmp_path / "image.tar") as archive:
        members = archive.getmembers()
        assert [m.name for m in members] == names
        for member in members:
            assert member.isreg()
            assert (member.mode, member.mtime, member.uid, member.gid) == (0o644, 0, 0, 0)
            assert (member.uname, member.gname) == ("", "")
        contents = {m.name: member_bytes(archive, m.name) for m in members}
    for blob, name in zip([img.config, gz, zst, tar, docker_tar, docker_gz], names, strict=False):
        assert contents[name] == blob.data
    layer_names = [f"{gz.hex}.tar.gz", f"{zst.hex}.tar.zst", f"{tar.hex}.tar", f"{gz.hex}.tar.gz"]
    layer_names += [f"{docker_tar.hex}.tar", f"{docker_gz.hex}.tar.gz", f"{zst.hex}.tar.zst"]
    expected = [{"Config": img.config.digest, "RepoTags": [REPO_TAG], "Layers": layer_names}]
    assert contents["manifest.json"] == json.dumps(expected, separators=(",", ":")).encode()
    # Each blob is downloaded once, however often the manifest lists it (side by side, so in
    # any order).
    once = (img.config, gz, zst, tar, docker_tar, docker_gz)
    assert sorted(store.opened) == sorted(b.digest for b in once)


@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, 10_000, 10_240 * 3])
def test_tarball_bytes_are_what_tarfile_writes_for_its_entries(tmp_path: Path, size: int) -> None:
    # blobs are written at offsets computed beforehand: the layout must be tarfile's own
    img = image("bytes", [Blob(GZIP, bytes(range(256)) * (size // 256) + b"x" * (size % 256))])
    MemoryBlobs(img.blobs()).write_tarball(tmp_path / "image.tar", img, REPO_TAG)
    written = (tmp_path / "image.tar").read_bytes()
    expected = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(written)) as ours,
        tarfile.open(fileobj=expected, mode="w", format=tarfile.PAX_FORMAT) as theirs,
    ):
        for member in ours.getmembers():
            theirs.addfile(member, io.BytesIO(member_bytes(ours, member.name)))
    assert written == expected.getvalue()


def test_tarball_of_an_image_without_layers(tmp_path: Path) -> None:
    img = image("empty", [])
    MemoryBlobs(img.blobs()).write_tarball(tmp_path / "image.tar", img, REPO_TAG)
    with tarfile.open(tmp_path / "image.tar") as archive:
        assert archive.getnames() == [img.config.digest, "manifest.json"]
        manifest = json.loads(member_bytes(archive, "manifest.json"))
    assert manifest == [{"Config": img.config.digest, "RepoTags": [REPO_TAG], "Layers": []}]


def test_tarball_copes_with_readers_that_return_a_byte_at_a_time(tmp_path: Path) -> None:
    img = image("slow", [Blob(GZIP, b"0123456789" * 50)])
    MemoryBlobs(img.blobs(), chunk=1).write_tarball(tmp_path / "image.tar", img, REPO_TAG)
    with tarfile.open(tmp_path / "image.tar") as archive:
        assert member_bytes(archive, f"{img.layers[0].hex}.tar.gz") == img.layers[0].data


@pytest.mark.parametrize("verify", [True, False], ids=["verifying-reader", "plain-reader"])
@pytest.mark.parametrize(
    "bad",
    [b"layer bytez", b"layer byte", b"layer bytes!", b""],
    ids=["same-size", "short", "long", "empty"],
)
def test_a_wrong_blob_fails_and_leaves_no_tarball(tmp_path: Path, verify: bool, bad: bytes) -> None:
    good = Blob(GZIP, b"layer bytes")
    img = image("bad", [Blob(GZIP, b"fine"), good])
    store = MemoryBlobs(img.blobs(), replace={good.digest: bad}, verify=verify)
    with pytest.raises(DigestMismatch):
        store.write_tarball(tmp_path / "image.tar", img, REPO_TAG)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("verify", [True, False], ids=["verifying-reader", "plain-reader"])
def test_an_empty_blob_that_is_not_empty_fails(tmp_path: Path, verify: bool) -> None:
    empty = Blob(GZIP, b"")
    img = image("empty-layer", [empty])
    store = MemoryBlobs(img.blobs(), replace={empty.digest: b"surprise"}, verify=verify)
    with pytest.raises(DigestMismatch):
        store.write_tarball(tmp_path / "image.tar", img, REPO_TAG)
    assert os.listdir(tmp_path) == []
    # An honest empty layer is fine.
    MemoryBlobs(img.blobs(), verify=verify).write_tarball(tmp_path / "image.tar", img, REPO_TAG)
    with tarfile.open(tmp_path / "image.tar") as archive:
        assert archive.getmember(f"{empty.hex}.tar.gz").size == 0


def test_a_failed_tarball_keeps_the_previous_file(tmp_path: Path) -> None:
    img = image("again")
    (tmp_path / "image.tar").write_bytes(b"previous")
    store = MemoryBlobs(img.blobs(), replace={img.layers[0].digest: b"nope"})
    with pytest.raises(DigestMismatch):
        store.write_tarball(tmp_path / "image.tar", img, REPO_TAG)
    assert os.listdir(tmp_path) == ["image.tar"]
    assert (tmp_path / "image.tar").read_bytes() == b"previous"


def test_tarball_refuses_a_malformed_layer_descriptor(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="invalid size"):
        write_image_tarball(
            tmp_path / "image.tar",
            config=Descriptor(OCI_CONFIG, sha256(b"{}"), 2),
            layers=[Descriptor(GZIP, sha256(b"x"), -1)],
            repo_tag=REPO_TAG,
            open_blob=MemoryBlobs().open_blob,
        )
    assert os.listdir(tmp_path) == []


# -- OCI image layout ---------------------------------------------------------------------------


def blob_files(*blobs: Blob) -> dict[str, bytes]:
    return {f"blobs/sha256/{b.hex}": b.data for b in blobs}


@pytest.mark.usefixtures("umask_022")
def test_layout_of_a_single_image(tmp_path: Path) -> None:
    img = image("single", [Blob(GZIP, b"one"), Blob(ZSTD, b"two"), Blob(GZIP, b"one")])
    store = MemoryBlobs(img.blobs())
    store.write_layout(tmp_path / "oci", img.manifest)

    generated = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            {"mediaType": mt.OCI_MANIFEST, "size": len(img.manifest.data), "digest": img.digest}
        ],
    }
    assert tree(tmp_path / "oci") == {
        "oci-layout": b'{\n    "imageLayoutVersion": "1.0.0"\n}',
        "index.json": json.dumps(generated, separators=(",", ":")).encode(),
        "single-image-digest": img.digest.encode(),
        **blob_files(img.manifest, img.config, *img.layers),
    }
    assert OCI_LAYOUT_CONTENT == b'{\n    "imageLayoutVersion": "1.0.0"\n}'
    assert sorted(store.opened) == sorted({b.digest for b in img.blobs()})
    assert store.fetched == []
    for path in (tmp_path / "oci").rglob("*"):
        assert path.stat().st_mode & 0o777 == (0o755 if path.is_dir() else 0o644), path


def test_layout_of_a_docker_image_names_its_media_type(tmp_path: Path) -> None:
    img = image(
        "docker",
        [Blob(DOCKER_GZIP, b"layer")],
        manifest_type=mt.DOCKER_MANIFEST_V2,
        config_type="application/vnd.docker.container.image.v1+json",
    )
    MemoryBlobs(img.blobs()).write_layout(tmp_path / "oci", img.manifest)
    written = json.loads((tmp_path / "oci" / "index.json").read_bytes())
    assert written["manifests"][0]["mediaType"] == mt.DOCKER_MANIFEST_V2
    assert set(tree(tmp_path / "oci")) >= set(blob_files(img.manifest, img.config, *img.layers))


@pytest.mark.parametrize("concurrency", [1, 4])
def test_layout_of_a_nested_index_keeps_every_child(tmp_path: Path, concurrency: int) -> None:
    shared = Blob(GZIP, b"shared layer")
    amd64 = image("amd64", [shared, Blob(GZIP, b"amd64 layer")])
    arm64 = image("arm64", [Blob(GZIP, b"arm64 layer")])
    s390x = image("s390x", [shared])
    attestation = image("attestation", [Blob("application/vnd.in-toto+json", b"{}")])
    inner = index([arm64, s390x])
    top = index([amd64, attestation, inner, s390x])  # s390x listed twice on purpose
    images = (amd64, arm64, s390x, attestation)
    store = MemoryBlobs(
        [b for i in images for b in i.blobs()], [*(i.manifest for i in images), inner]
    )
    store.write_layout(tmp_path / "oci", top, concurrency)

    blobs = {b for i in images for b in (i.manifest, *i.blobs())} | {inner}
    assert tree(tmp_path / "oci") == {
        "oci-layout": OCI_LAYOUT_CONTENT,
        "index.json": top.data,
        **blob_files(*blobs),
    }
    assert sha256((tmp_path / "oci" / "index.json").read_bytes()) == top.digest
    assert sorted(store.fetched) == sorted(m.digest for m in (*(i.manifest for i in images), inner))
    assert sorted(store.opened) == sorted({b.digest for i in images for b in i.blobs()})


def test_layout_of_a_docker_manifest_list(tmp_path: Path) -> None:
    docker = {
        "manifest_type": mt.DOCKER_MANIFEST_V2,
        "config_type": "application/vnd.docker.container.image.v1+json",
    }
    one = image("one", [Blob(DOCKER_GZIP, b"1")], **docker)
    two = image("two", [Blob(DOCKER_GZIP, b"2")], **docker)
    top = index([one, two], mt.DOCKER_MANIFEST_LIST)
    store = MemoryBlobs([*one.blobs(), *two.blobs()], [one.manifest, two.manifest])
    store.write_layout(tmp_path / "oci", top)
    files = tree(tmp_path / "oci")
    assert files["index.json"] == top.data
    assert "single-image-digest" not in files
    assert set(files) == {"oci-layout", "index.json"} | set(
        blob_files(one.manifest, two.manifest, *one.blobs(), *two.blobs())
    )


def test_child_type_falls_back_to_the_descriptor_and_body(tmp_path: Path) -> None:
    child = image("generic")
    top = index([child])
    store = MemoryBlobs(child.blobs())
    store.manifests[child.digest] = ("application/octet-stream", child.manifest.data)
    store.write_layout(tmp_path / "oci", top)
    assert (tmp_path / "oci" / "blobs" / "sha256" / child.config.hex).read_bytes() == (
        child.config.data
    )


def test_a_child_manifest_with_the_wrong_bytes_fails_before_writing(tmp_path: Path) -> None:
    child = image("child")
    top = index([child])
    store = MemoryBlobs(child.blobs())
    store.manifests[child.digest] = (mt.OCI_MANIFEST, child.manifest.data + b" ")
    with pytest.raises(DigestMismatch, match=child.digest):
        store.write_layout(tmp_path / "oci", top)
    assert not (tmp_path / "oci").exists()


def test_top_manifest_bytes_must_match_the_digest(tmp_path: Path) -> None:
    img = image("top")
    with pytest.raises(DigestMismatch):
        write_oci_layout(
            tmp_path / "oci",
            digest=img.digest,
            media_type=img.manifest.media_type,
            manifest_bytes=img.manifest.data + b"\n",
            fetch_manifest=MemoryBlobs().fetch_manifest,
            open_blob=MemoryBlobs(img.blobs()).open_blob,
        )
    assert not (tmp_path / "oci").exists()


def test_unsupported_manifest_types_are_refused(tmp_path: Path) -> None:
    schema1 = Blob(mt.DOCKER_MANIFEST_V1_SIGNED, b'{"schemaVersion":1}')
    with pytest.raises(UnsupportedMedia, match="unsupported manifest media type"):
        MemoryBlobs().write_layout(tmp_path / "oci", schema1)
    artifact = Blob("application/vnd.example.thing", b'{"kind":"thing"}')
    store = MemoryBlobs(manifests=[artifact])
    with pytest.raises(UnsupportedMedia, match=artifact.digest):
        store.write_layout(tmp_path / "oci", index([artifact]))
    assert not (tmp_path / "oci").exists()


def test_a_malformed_child_descriptor_is_an_image_error(tmp_path: Path) -> None:
    body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [{"digest": "../x"}]}
    top = Blob(mt.OCI_INDEX, json.dumps(body).encode())
    with pytest.raises(ImageError, match=r"invalid index .*: manifests\[0\]\.digest: not a sha256"):
        MemoryBlobs().write_layout(tmp_path / "oci", top)
    assert not (tmp_path / "oci").exists()


@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.parametrize("verify", [True, False], ids=["verifying-reader", "plain-reader"])
def test_a_bad_blob_leaves_no_index_and_no_partial_blob(
    tmp_path: Path, concurrency: int, verify: bool
) -> None:
    images = [image(f"img{n}", [Blob(GZIP, f"layer {n}".encode() * 100)]) for n in range(6)]
    top = index(images)
    broken = images[3].layers[0]
    store = MemoryBlobs(
        [b for i in images for b in i.blobs()],
        [i.manifest for i in images],
        replace={broken.digest: broken.data[:-1] + b"?"},
        verify=verify,
    )
    with pytest.raises(DigestMismatch, match=broken.digest):
        store.write_layout(tmp_path / "oci", top, concurrency)
    files = tree(tmp_path / "oci")
    assert "index.json" not in files
    assert f"blobs/sha256/{broken.hex}" not in files
    assert [name for name in files if name.endswith(".part")] == []


def test_blobs_download_concurrently(tmp_path: Path) -> None:
    """Two downloads must be under way at once, or the barrier breaks."""
    images = [image(f"c{n}") for n in range(2)]
    barrier = threading.Barrier(2, timeout=10)
    store = MemoryBlobs([b for i in images for b in i.blobs()], [i.manifest for i in images])
    layers = {i.layers[0].digest for i in images}
    plain_open = store.open_blob

    @contextlib.contextmanager
    def open_blob(digest: str, size: int | None) -> Iterator[BlobReader]:
        if digest in layers:
            barrier.wait()
        with plain_open(digest, size) as reader:
            yield reader

    write_oci_layout(
        tmp_path / "oci",
        digest=index(images).digest,
        media_type=mt.OCI_INDEX,
        manifest_bytes=index(images).data,
        fetch_manifest=store.fetch_manifest,
        open_blob=open_blob,
    )
    assert (tmp_path / "oci" / "index.json").read_bytes() == index(images).data

"""Loading what `out` pushes (spec §6.6.2): `docker save` tarballs and OCI image layouts.

Every input is built here, byte by byte, in `tmp_path`; nothing runs but the loader.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import socket
import tarfile
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from regwatch.errors import ConfigError, ImageError
from regwatch.image import mediatypes as mt
from regwatch.image.loading import load_image
from regwatch.image.mediatypes import DOCKER_CONFIG, DOCKER_LAYER_GZIP
from regwatch.image.model import Descriptor
from regwatch.image.pushes import BlobSource, LoadedImage
from tests.images import Blob, Image, sha256

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


def layer_tar(files: Mapping[str, bytes]) -> bytes:
    """A plain layer tar whose bytes depend only on `files`."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(content), 1_600_000_000
            tar.addfile(info, io.BytesIO(content))
    return raw.getvalue()


def read_blob(blob: BlobSource) -> bytes:
    with blob.open() as reader:
        return reader.read()


def descriptors(loaded: LoadedImage) -> list[Descriptor]:
    return [blob.descriptor for blob in loaded.blobs]


# -- docker save tarballs -----------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A tar entry: a file with `data`, or a link to `link` (symbolic unless `hard`)."""

    name: str
    data: bytes = b""
    link: str | None = None
    hard: bool = False


def write_tar(path: Path, entries: Sequence[Entry]) -> Path:
    with tarfile.open(path, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            if entry.link is not None:
                info.type = tarfile.LNKTYPE if entry.hard else tarfile.SYMTYPE
                info.linkname = entry.link
                tar.addfile(info)
            else:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
    return path


def manifest_json(config: str, layers: Sequence[str], images: int = 1) -> Entry:
    image = {"Config": config, "RepoTags": ["example.com/app:1"], "Layers": list(layers)}
    return Entry("manifest.json", json.dumps([image] * images).encode())


CONFIG = json.dumps({"architecture": "amd64", "os": "linux"}).encode()


def go_manifest(config: bytes, layers: Sequence[bytes]) -> bytes:
    """The manifest go-containerregistry's `tarball.Image` makes, written out by hand."""
    descriptors = ",".join(
        '{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip",'
        f'"size":{len(layer)},"digest":"{sha256(layer)}"}}'
        for layer in layers
    )
    return (
        '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
        '"config":{"mediaType":"application/vnd.docker.container.image.v1+json",'
        f'"size":{len(config)},"digest":"{sha256(config)}"}},"layers":[{descriptors}]}}'
    ).encode()


def test_tarball_with_gzip_layers_rebuilds_the_go_manifest_byte_for_byte(tmp_path: Path) -> None:
    first = gzip.compress(layer_tar({"a": b"1"}), mtime=0)
    second = gzip.compress(layer_tar({"b": b"2"}), mtime=0)
    path = write_tar(
        tmp_path / "image.tar",
        [
            Entry("cfg.json", CONFIG),
            Entry("one.tar.gz", first),
            Entry("two.tar.gz", second),
            manifest_json("cfg.json", ["one.tar.gz", "two.tar.gz"]),
        ],
    )

    with load_image(path) as loaded:
        expected = (
            '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
            '"config":{"mediaType":"application/vnd.docker.container.image.v1+json",'
            f'"size":{len(CONFIG)},"digest":"{sha256(CONFIG)}"}},'
            '"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip",'
            f'"size":{len(first)},"digest":"{sha256(first)}"}},'
            '{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip",'
            f'"size":{len(second)},"digest":"{sha256(second)}"}}]}}'
        ).encode()
        assert loaded.top.body == expected == go_manifest(CONFIG, [first, second])
        assert loaded.top.digest == sha256(expected)
        assert loaded.top.media_type == mt.DOCKER_MANIFEST_V2
        assert loaded.manifests == (loaded.top,)
        assert loaded.scratch is None
        assert [
            (b.descriptor.digest, b.descriptor.size, b.descriptor.media_type) for b in loaded.blobs
        ] == [
            (sha256(CONFIG), len(CONFIG), DOCKER_CONFIG),
            (sha256(first), len(first), DOCKER_LAYER_GZIP),
            (sha256(second), len(second), DOCKER_LAYER_GZIP),
        ]
        # Streamed from the tarball, exactly the entry's bytes, as often as asked.
        assert [read_blob(b) for b in loaded.blobs] == [CONFIG, first, second]
        assert read_blob(loaded.blobs[1]) == first
        with loaded.blobs[2].open() as reader:
            assert reader.read(3) == second[:3]
            assert reader.read() == second[3:]
            assert reader.read(10) == b""


def test_tarball_with_uncompressed_layers_gzips_them_once_into_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    first, second = layer_tar({"a": b"1" * 5000}), layer_tar({"b": b"2"})
    path = write_tar(
        tmp_path / "image.tar",
        [
            Entry("cfg.json", CONFIG),
            Entry("1/layer.tar", first),
            Entry("2/layer.tar", second),
            manifest_json("cfg.json", ["1/layer.tar", "2/layer.tar"]),
        ],
    )

    loaded = load_image(path)
    assert loaded.scratch is not None
    assert loaded.scratch.parent == temp
    layers = loaded.blobs[1:]
    zipped = [read_blob(blob) for blob in layers]
    assert [gzip.decompress(z) for z in zipped] == [first, second]
    assert [(d.digest, d.size, d.media_type) for d in (b.descriptor for b in layers)] == [
        (sha256(z), len(z), DOCKER_LAYER_GZIP) for z in zipped
    ]
    # Go's compress/gzip header at BestSpeed: no name, mtime 0, XFL 4, OS unknown.
    assert all(z.startswith(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff") for z in zipped)
    assert loaded.top.body == go_manifest(CONFIG, zipped)
    on_disk = sorted(loaded.scratch.iterdir())
    assert sorted(p.read_bytes() for p in on_disk) == sorted(zipped)

    loaded.close()
    loaded.close()
    assert list(temp.iterdir()) == []


def test_temporary_layers_go_with_the_block_and_when_loading_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    raw = layer_tar({"a": b"1"})
    good = write_tar(
        tmp_path / "good.tar",
        [Entry("cfg", CONFIG), Entry("l.tar", raw), manifest_json("cfg", ["l.tar"])],
    )
    with load_image(good) as loaded:
        assert loaded.scratch is not None
        assert loaded.scratch.is_dir()
    assert list(temp.iterdir()) == []

    broken = write_tar(
        tmp_path / "broken.tar",
        [Entry("cfg", CONFIG), Entry("l.tar", raw), manifest_json("cfg", ["l.tar", "gone"])],
    )
    with pytest.raises(ImageError, match="file gone not found in tar"):
        load_image(broken)
    assert list(temp.iterdir()) == []


def test_a_zstd_first_layer_counts_as_compressed_and_is_labelled_gzip(tmp_path: Path) -> None:
    zstd_layer = zstandard.ZstdCompressor().compress(layer_tar({"z": b"zstd"}))
    gzip_layer = gzip.compress(layer_tar({"g": b"gzip"}), mtime=0)
    path = write_tar(
        tmp_path / "image.tar",
        [
            Entry("cfg", CONFIG),
            Entry("z.tar.zst", zstd_layer),
            Entry("g.tar.gz", gzip_layer),
            manifest_json("cfg", ["z.tar.zst", "g.tar.gz"]),
        ],
    )
    with load_image(path) as loaded:
        assert loaded.scratch is None
        assert loaded.top.body == go_manifest(CONFIG, [zstd_layer, gzip_layer])
        assert {b.descriptor.media_type for b in loaded.blobs[1:]} == {DOCKER_LAYER_GZIP}
        assert read_blob(loaded.blobs[1]) == zstd_layer


def test_the_first_layer_decides_for_all(tmp_path: Path) -> None:
    """Compressed first ⇒ a later plain layer is uploaded as stored, as Go does."""
    zipped, plain = gzip.compress(layer_tar({"a": b"1"}), mtime=0), layer_tar({"b": b"2"})
    path = write_tar(
        tmp_path / "image.tar",
        [
            Entry("cfg", CONFIG),
            Entry("a", zipped),
            Entry("b", plain),
            manifest_json("cfg", ["a", "b"]),
        ],
    )
    with load_image(path) as loaded:
        assert loaded.top.body == go_manifest(CONFIG, [zipped, plain])


def test_a_tarball_must_hold_exactly_one_image(tmp_path: Path) -> None:
    layer = gzip.compress(layer_tar({"a": b"1"}), mtime=0)
    entries = [Entry("cfg", CONFIG), Entry("l", layer)]
    two = write_tar(tmp_path / "two.tar", [*entries, manifest_json("cfg", ["l"], images=2)])
    none = write_tar(tmp_path / "none.tar", [*entries, manifest_json("cfg", ["l"], images=0)])
    for path in (two, none):
        with pytest.raises(ImageError) as caught:
            load_image(path)
        assert str(caught.value) == (
            "tarball must contain only a single image to be used with tarball.Image"
        )


def test_linked_entries_are_followed(tmp_path: Path) -> None:
    """Old `docker save` layouts link `<id>/layer.tar` to another layer's file."""
    layer = gzip.compress(layer_tar({"a": b"1"}), mtime=0)
    path = write_tar(
        tmp_path / "image.tar",
        [
            Entry("blobs/cfg.json", CONFIG),
            Entry("cfg-link", link="blobs/cfg.json"),
            Entry("aaa/layer.tar", layer),
            Entry("bbb/layer.tar", link="../aaa/layer.tar"),
            Entry("ccc/layer.tar", link="aaa/layer.tar", hard=True),
            Entry("ddd/layer.tar", link="/bbb/layer.tar"),
            manifest_json("./cfg-link", ["bbb/layer.tar", "ccc/layer.tar", "ddd/layer.tar"]),
        ],
    )
    with load_image(path) as loaded:
        assert loaded.top.body == go_manifest(CONFIG, [layer, layer, layer])
        assert [read_blob(b) for b in loaded.blobs] == [CONFIG, layer]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([Entry("cfg", CONFIG)], "file manifest.json not found in tar"),
        (
            [Entry("manifest.json", b"not json")],
            "manifest.json is not JSON",
        ),
        ([Entry("manifest.json", b"null")], "no valid manifest.json in tarball"),
        (
            [Entry("manifest.json", b"[" * 100_000)],
            "manifest.json is not JSON: recursion limit exceeded",
        ),
        (
            [Entry("manifest.json", b'[{"Config": ' + b"9" * 5000 + b"}]")],
            "manifest.json is not JSON: number out of range",
        ),
        ([Entry("manifest.json", b'[{"Config": "\xff"}]')], "manifest.json is not JSON"),
        ([Entry("manifest.json", b"[5]")], "the image entry is not an object"),
        ([Entry("manifest.json", b'[{"Config": 5}]')], "the image has no Config file name"),
        ([manifest_json("cfg", [])], "file cfg not found in tar"),
        (
            [Entry("a", link="b"), Entry("b", link="a"), manifest_json("a", [])],
            "too many levels of links",
        ),
        (
            [Entry("cfg", CONFIG), Entry("l", link="gone"), manifest_json("cfg", ["l"])],
            "file gone not found in tar",
        ),
    ],
)
def test_broken_tarballs_fail_with_one_line(
    tmp_path: Path, entries: list[Entry], message: str
) -> None:
    path = write_tar(tmp_path / "image.tar", entries)
    with pytest.raises(ImageError, match=message) as caught:
        load_image(path)
    assert "\n" not in str(caught.value)


def test_a_file_that_is_not_a_tar_fails(tmp_path: Path) -> None:
    path = tmp_path / "image.tar"
    path.write_bytes(b"\x1f\x8b not a tar at all" * 40)
    with pytest.raises(ImageError, match=f"reading {path} as a tarball"):
        load_image(path)


def test_a_missing_path_is_the_users_mistake(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_image(tmp_path / "nothing")


def test_an_image_without_layers_has_an_empty_layer_list(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "image.tar", [Entry("cfg", CONFIG), manifest_json("cfg", [])])
    with load_image(path) as loaded:
        assert loaded.top.body == go_manifest(CONFIG, [])
        assert loaded.top.body.endswith(b',"layers":[]}')


# -- OCI image layouts --------------------------------------------------------------------------


def make_image(name: str, *, docker: bool = False) -> Image:
    config = Blob(OCI_CONFIG, json.dumps({"name": name}).encode())
    layer = Blob(OCI_GZIP, gzip.compress(layer_tar({"name": name.encode()}), mtime=0))
    media_type = mt.DOCKER_MANIFEST_V2 if docker else mt.OCI_MANIFEST
    body = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
    }
    return Image(config, (layer,), Blob(media_type, json.dumps(body, indent=1).encode()))


def make_index(children: Sequence[Blob], media_type: str = mt.OCI_INDEX) -> Blob:
    body = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            child.descriptor(platform={"os": "linux", "architecture": f"arch{n}"})
            for n, child in enumerate(children)
        ],
    }
    return Blob(media_type, json.dumps(body).encode())


class Layout:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True)

    def add(self, *items: Blob | Image) -> None:
        for item in items:
            blobs = (
                (item.config, *item.layers, item.manifest) if isinstance(item, Image) else (item,)
            )
            for blob in blobs:
                self.path(blob).write_bytes(blob.data)

    def path(self, blob: Blob) -> Path:
        return self.root / "blobs" / "sha256" / blob.digest.removeprefix("sha256:")

    def index(self, *descriptors: dict[str, object], media_type: str | None = None) -> bytes:
        body: dict[str, object] = {"schemaVersion": 2, "manifests": list(descriptors)}
        if media_type:
            body["mediaType"] = media_type
        data = json.dumps(body).encode()
        (self.root / "index.json").write_bytes(data)
        return data


def pushed(loaded: LoadedImage) -> list[tuple[str, str]]:
    return [(m.digest, m.media_type) for m in loaded.manifests]


def test_single_image_digest_pushes_that_image_as_a_plain_manifest(tmp_path: Path) -> None:
    image = make_image("one", docker=True)
    layout = Layout(tmp_path)
    layout.add(image)
    layout.index(image.manifest.descriptor(), media_type=mt.OCI_INDEX)
    (tmp_path / "single-image-digest").write_text(image.manifest.digest)

    loaded = load_image(tmp_path)
    assert loaded.top.digest == image.manifest.digest
    assert loaded.top.media_type == mt.DOCKER_MANIFEST_V2
    assert loaded.top.body == image.manifest.data
    assert loaded.manifests == (loaded.top,)
    assert [
        (b.descriptor.digest, b.descriptor.size, b.descriptor.media_type) for b in loaded.blobs
    ] == [
        (image.config.digest, len(image.config.data), OCI_CONFIG),
        (image.layers[0].digest, len(image.layers[0].data), OCI_GZIP),
    ]
    assert [read_blob(b) for b in loaded.blobs] == [image.config.data, image.layers[0].data]


def test_a_single_image_without_the_marker_is_pushed_as_the_index_verbatim(
    tmp_path: Path,
) -> None:
    image = make_image("one")
    layout = Layout(tmp_path)
    layout.add(image)
    # Whatever index.json says its type is, it goes out as an OCI index.
    index_json = layout.index(image.manifest.descriptor(), media_type=mt.DOCKER_MANIFEST_LIST)

    loaded = load_image(tmp_path)
    assert loaded.top.body == index_json
    assert loaded.top.digest == sha256(index_json)
    assert loaded.top.media_type == mt.OCI_INDEX
    assert pushed(loaded) == [
        (image.manifest.digest, mt.OCI_MANIFEST),
        (sha256(index_json), mt.OCI_INDEX),
    ]
    assert loaded.manifests[0].body == image.manifest.data


def test_a_buildx_style_wrapped_index_is_unwrapped(tmp_path: Path) -> None:
    amd, arm = make_image("amd64"), make_image("arm64", docker=True)
    inner = make_index([amd.manifest, arm.manifest], mt.DOCKER_MANIFEST_LIST)
    layout = Layout(tmp_path)
    layout.add(amd, arm, inner)
    # The wrapper declares the child as an OCI index although it is a Docker list: the
    # parent's descriptor decides.
    layout.index({**inner.descriptor(), "mediaType": mt.OCI_INDEX})

    loaded = load_image(tmp_path)
    assert loaded.top.body == inner.data
    assert loaded.top.digest == inner.digest
    assert loaded.top.media_type == mt.OCI_INDEX
    assert pushed(loaded) == [
        (amd.manifest.digest, mt.OCI_MANIFEST),
        (arm.manifest.digest, mt.DOCKER_MANIFEST_V2),
        (inner.digest, mt.OCI_INDEX),
    ]
    assert {b.descriptor.digest for b in loaded.blobs} == {
        blob.digest for image in (amd, arm) for blob in (image.config, *image.layers)
    }


def test_wrapping_is_undone_as_often_as_it_was_done(tmp_path: Path) -> None:
    amd, arm = make_image("amd64"), make_image("arm64")
    inner = make_index([amd.manifest, arm.manifest])
    middle = make_index([inner], mt.DOCKER_MANIFEST_LIST)
    layout = Layout(tmp_path)
    layout.add(amd, arm, inner, middle)
    layout.index(middle.descriptor())

    loaded = load_image(tmp_path)
    assert loaded.top.digest == inner.digest
    assert loaded.top.media_type == mt.OCI_INDEX  # as `middle` describes it


def test_the_marker_picks_an_image_of_the_unwrapped_index(tmp_path: Path) -> None:
    amd, arm = make_image("amd64"), make_image("arm64")
    inner = make_index([amd.manifest, arm.manifest])
    layout = Layout(tmp_path)
    layout.add(amd, arm, inner)
    layout.index(inner.descriptor())
    (tmp_path / "single-image-digest").write_text(arm.manifest.digest)

    loaded = load_image(tmp_path)
    assert pushed(loaded) == [(arm.manifest.digest, mt.OCI_MANIFEST)]
    assert {b.descriptor.digest for b in loaded.blobs} == {arm.config.digest, arm.layers[0].digest}


def test_nested_indexes_below_the_top_are_pushed_children_first(tmp_path: Path) -> None:
    one, two, three = make_image("one"), make_image("two"), make_image("three")
    nested = make_index([two.manifest, three.manifest])
    layout = Layout(tmp_path)
    layout.add(one, two, three, nested)
    # `one` twice: pushed once; its blobs once.
    index_json = layout.index(
        one.manifest.descriptor(), nested.descriptor(), one.manifest.descriptor()
    )

    loaded = load_image(tmp_path)
    assert pushed(loaded) == [
        (one.manifest.digest, mt.OCI_MANIFEST),
        (two.manifest.digest, mt.OCI_MANIFEST),
        (three.manifest.digest, mt.OCI_MANIFEST),
        (nested.digest, mt.OCI_INDEX),
        (sha256(index_json), mt.OCI_INDEX),
    ]
    assert len(loaded.blobs) == 6
    assert loaded.top == loaded.manifests[-1]


def test_shared_blobs_are_listed_once(tmp_path: Path) -> None:
    one = make_image("one")
    other_body = json.loads(one.manifest.data)
    other_body["annotations"] = {"copy": "yes"}
    other = Blob(mt.OCI_MANIFEST, json.dumps(other_body).encode())
    layout = Layout(tmp_path)
    layout.add(one, other)
    layout.index(one.manifest.descriptor(), other.descriptor())

    loaded = load_image(tmp_path)
    assert len(loaded.manifests) == 3
    assert [d.digest for d in descriptors(loaded)] == [one.config.digest, one.layers[0].digest]


def test_foreign_layers_are_not_pushed(tmp_path: Path) -> None:
    image = make_image("one", docker=True)
    foreign = {"mediaType": FOREIGN, "digest": sha256(b"elsewhere"), "size": 9, "urls": ["x"]}
    body = json.loads(image.manifest.data)
    body["layers"].insert(0, foreign)
    manifest = Blob(mt.DOCKER_MANIFEST_V2, json.dumps(body).encode())
    layout = Layout(tmp_path)
    layout.add(image, manifest)
    layout.index(manifest.descriptor())
    (tmp_path / "single-image-digest").write_text(manifest.digest)

    loaded = load_image(tmp_path)
    assert [d.digest for d in descriptors(loaded)] == [
        image.config.digest,
        image.layers[0].digest,
    ]


def broken_layout(root: Path, problem: str) -> None:
    image = make_image("one")
    layout = Layout(root)
    layout.add(image)
    layout.index(image.manifest.descriptor())
    if problem == "corrupt layer":
        data = bytearray(image.layers[0].data)
        data[-1] ^= 0xFF
        layout.path(image.layers[0]).write_bytes(bytes(data))
    elif problem == "short config":
        layout.path(image.config).write_bytes(image.config.data[:-1])
    elif problem == "missing layer":
        layout.path(image.layers[0]).unlink()
    elif problem == "corrupt manifest":
        layout.path(image.manifest).write_bytes(image.manifest.data.replace(b"2", b"3", 1))
    elif problem == "missing index.json":
        (root / "index.json").unlink()
    elif problem == "index.json not json":
        (root / "index.json").write_bytes(b"{")
    elif problem == "bad digest":
        layout.index({**image.manifest.descriptor(), "digest": "sha256:../../etc/passwd"})
    elif problem == "descriptor without digest":
        layout.index({"mediaType": mt.OCI_MANIFEST, "size": 3})
    elif problem == "marker with newline":
        (root / "single-image-digest").write_text(image.manifest.digest + "\n")
    elif problem == "marker not listed":
        (root / "single-image-digest").write_text(image.config.digest)


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("short config", "has 1[0-9] bytes, its descriptor says"),
        ("missing layer", "blob sha256:[0-9a-f]+: .*: no such file"),
        ("corrupt manifest", "content has digest"),
        ("missing index.json", "index.json: .*index.json: no such file"),
        ("index.json not json", "invalid index.json: not JSON"),
        ("bad digest", r"invalid index.json: manifests\[0\].digest: not a sha256 or sha512 digest"),
        ("descriptor without digest", r"invalid index.json: manifests\[0\].digest: field required"),
        ("marker with newline", "single-image-digest: invalid digest"),
        ("marker not listed", "is not listed in the index"),
    ],
)
def test_broken_layouts_fail_with_one_line(tmp_path: Path, problem: str, message: str) -> None:
    root = tmp_path / "layout"
    broken_layout(root, problem)
    with pytest.raises(ImageError, match=message) as caught:
        load_image(root)
    assert str(caught.value).startswith(f"loading {root} as OCI layout: ")
    assert "\n" not in str(caught.value)


def test_an_entry_of_an_unknown_type_is_refused(tmp_path: Path) -> None:
    image = make_image("one")
    layout = Layout(tmp_path)
    layout.add(image)
    layout.index(
        image.manifest.descriptor(), {**image.config.descriptor(), "mediaType": "text/plain"}
    )
    with pytest.raises(ImageError, match="has unsupported media type 'text/plain'"):
        load_image(tmp_path)


def test_the_marker_must_name_an_image(tmp_path: Path) -> None:
    amd, arm = make_image("amd64"), make_image("arm64")
    inner = make_index([amd.manifest])
    layout = Layout(tmp_path)
    layout.add(amd, arm, inner)
    layout.index(inner.descriptor(), arm.manifest.descriptor())
    (tmp_path / "single-image-digest").write_text(inner.digest)
    with pytest.raises(ImageError, match="not an image manifest"):
        load_image(tmp_path)


def test_only_index_json_is_required(tmp_path: Path) -> None:
    (tmp_path / "index.json").write_text('{"schemaVersion":2,"manifests":[]}')
    loaded = load_image(tmp_path)
    assert pushed(loaded) == [(sha256(b'{"schemaVersion":2,"manifests":[]}'), mt.OCI_INDEX)]
    assert loaded.blobs == ()


def test_big_layers_stream_through_in_pieces(tmp_path: Path) -> None:
    noise = b"".join(hashlib.sha256(str(n).encode()).digest() for n in range(100_000))
    big = gzip.compress(layer_tar({"noise": noise}), compresslevel=1, mtime=0)
    assert len(big) > 3 * (1 << 20)
    path = write_tar(
        tmp_path / "image.tar",
        [Entry("cfg", CONFIG), Entry("big", big), manifest_json("cfg", ["big"])],
    )
    with load_image(path) as loaded:
        layer = loaded.blobs[1]
        assert (layer.descriptor.digest, layer.descriptor.size) == (sha256(big), len(big))
        with layer.open() as reader:
            pieces = list(iter(lambda: reader.read(100_000), b""))
        assert len(pieces) > 30
        assert b"".join(pieces) == big


def test_a_tarball_cut_short_after_loading_fails_the_reader(tmp_path: Path) -> None:
    layer = gzip.compress(layer_tar({"a": b"1" * 100_000}), mtime=0)
    path = write_tar(
        tmp_path / "image.tar",
        [Entry("cfg", CONFIG), Entry("l", layer), manifest_json("cfg", ["l"])],
    )
    with load_image(path) as loaded:
        blob = loaded.blobs[1]
        with path.open("r+b") as file:
            file.truncate(1024 + len(layer) // 2)
        with pytest.raises(ImageError, match="ends early"), blob.open() as reader:
            reader.read()


# -- hostile local input ------------------------------------------------------------------------


def finishes(work: Callable[[], object], seconds: float = 10) -> BaseException | None:
    """Run `work` in a thread; fail the test if it is still blocked after `seconds`."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the test, which inspects it
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked on a file that is not a regular file"
    return outcome[0]


def special_file(path: Path, kind: str) -> Path:
    """Make `path` a FIFO, a socket, or a symbolic link to a device or a FIFO."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        # A socket's path must be short: bind in a short directory, then move it into place.
        short = Path(tempfile.mkdtemp(dir="/tmp")) / "s"
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(str(short))
        short.rename(path)
        short.parent.rmdir()
    elif kind == "device":
        path.symlink_to("/dev/zero")
    elif kind == "link-to-fifo":
        os.mkfifo(path.with_name(path.name + ".fifo"))
        path.symlink_to(path.name + ".fifo")
    return path


SPECIAL_KINDS = ["fifo", "socket", "device", "link-to-fifo"]


@pytest.mark.parametrize("kind", SPECIAL_KINDS)
def test_an_image_path_that_is_no_file_or_directory_is_refused_at_once(
    tmp_path: Path, kind: str
) -> None:
    path = special_file(tmp_path / "image", kind)
    error = finishes(lambda: load_image(path))
    assert isinstance(error, ConfigError)
    assert "not a tarball or an OCI layout directory" in str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize("kind", SPECIAL_KINDS)
@pytest.mark.parametrize("which", ["index.json", "manifest", "config", "single-image-digest"])
def test_a_layout_file_that_is_no_regular_file_is_refused_at_once(
    tmp_path: Path, kind: str, which: str
) -> None:
    image = make_image("one")
    layout = Layout(tmp_path)
    layout.add(image)
    layout.index(image.manifest.descriptor())
    target = {
        "index.json": tmp_path / "index.json",
        "manifest": layout.path(image.manifest),
        "config": layout.path(image.config),
        "single-image-digest": tmp_path / "single-image-digest",
    }[which]
    target.unlink(missing_ok=True)
    special_file(target, kind)

    error = finishes(lambda: load_image(tmp_path))

    assert isinstance(error, ImageError), error
    assert str(error).startswith(f"loading {tmp_path} as OCI layout: ")
    assert "not a regular file" in str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize("kind", SPECIAL_KINDS)
def test_the_oci_layout_file_is_never_read(tmp_path: Path, kind: str) -> None:
    image = make_image("one")
    layout = Layout(tmp_path)
    layout.add(image)
    layout.index(image.manifest.descriptor())
    special_file(tmp_path / "oci-layout", kind)
    loaded = finishes(lambda: load_image(tmp_path))
    assert loaded is None


def test_a_layer_file_that_turns_into_a_fifo_is_refused_when_opened(tmp_path: Path) -> None:
    image = make_image("one")
    layout = Layout(tmp_path)
    layout.add(image)
    layout.index(image.manifest.descriptor())
    loaded = load_image(tmp_path)
    layer = next(b for b in loaded.blobs if b.descriptor.digest == image.layers[0].digest)
    layout.path(image.layers[0]).unlink()
    os.mkfifo(layout.path(image.layers[0]))

    error = finishes(lambda: read_blob(layer))

    assert isinstance(error, ImageError)
    assert "a named pipe, not a regular file" in str(error)


MALFORMED_INDEXES = {
    "deeply nested": (b"[" * 100_000, "invalid index.json: not JSON: recursion limit exceeded"),
    "huge number": (
        b'{"schemaVersion": ' + b"9" * 5000 + b"}",
        "invalid index.json: not JSON: number out of range",
    ),
    "not utf-8": (b'{"annotations": {"a": "\xff"}}', "invalid index.json: not JSON"),
    "not an object": (b'["manifests"]', "invalid index.json: not a JSON object"),
    "manifests not a list": (b'{"manifests": 5}', "invalid index.json: manifests: input should"),
    "platform as text": (
        json.dumps(
            {"manifests": [{"digest": sha256(b"x"), "size": 1, "platform": "linux/amd64"}]}
        ).encode(),
        r"invalid index.json: manifests\[0\].platform: input should be an object",
    ),
    "size as text": (
        json.dumps({"manifests": [{"digest": sha256(b"x"), "size": "1"}]}).encode(),
        r"invalid index.json: manifests\[0\].size: input should be a valid integer",
    ),
    "hostile key": (
        json.dumps({"annotations": {"a\nerror: forged": 1}}).encode(),
        r"invalid index.json: annotations\['a\\nerror: forged'\]: input should be a valid string",
    ),
}


@pytest.mark.parametrize("name", list(MALFORMED_INDEXES))
def test_a_malformed_index_json_fails_with_one_line(tmp_path: Path, name: str) -> None:
    body, message = MALFORMED_INDEXES[name]
    (tmp_path / "index.json").write_bytes(body)
    with pytest.raises(ImageError, match=message) as caught:
        load_image(tmp_path)
    assert str(caught.value).startswith(f"loading {tmp_path} as OCI layout: ")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"layers": 5}, "layers: input should be a valid array"),
        ({"config": ["x"]}, "config: input should be an object"),
        ({"config": None}, "config: input should be an object"),
        ({"annotations": {"a": 1}}, r"annotations.a: input should be a valid string"),
    ],
)
def test_a_malformed_layout_manifest_fails_with_one_line(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    image = make_image("one")
    body = json.loads(image.manifest.data)
    body.update(change)
    manifest = Blob(mt.OCI_MANIFEST, json.dumps(body).encode())
    layout = Layout(tmp_path)
    layout.add(image, manifest)
    layout.index(manifest.descriptor())
    with pytest.raises(ImageError, match=f"invalid manifest {manifest.digest}: {message}"):
        load_image(tmp_path)

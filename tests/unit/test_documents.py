"""Registry JSON as typed values (`regwatch.image.documents`, `manifests.parse_manifest`).

Real documents of every flavour parse; anything malformed is one `ImageError` line that names
the document and the first problem, whatever the bytes (deep nesting, huge numbers, not UTF-8).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from regwatch.errors import ImageError, UnsupportedMedia
from regwatch.image import mediatypes as mt
from regwatch.image.documents import (
    MAX_DOCUMENT_BYTES,
    load_json,
    parse_image_config,
    parse_image_manifest,
    parse_index,
)
from regwatch.image.manifests import parse_manifest, select_child
from regwatch.image.model import ImageConfig, ImageManifest, Index, Platform
from tests.images import sha256

CONFIG = {
    "mediaType": "application/vnd.oci.image.config.v1+json",
    "digest": sha256(b"config"),
    "size": 6,
}
LAYER = {
    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
    "digest": sha256(b"layer"),
    "size": 5,
}
NAME = "manifest example.com/app@sha256:abc"


def body(document: Any) -> bytes:
    return json.dumps(document).encode()


def manifest(**changes: Any) -> bytes:
    document = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": CONFIG}
    document["layers"] = [LAYER]
    document.update(changes)
    return body({k: v for k, v in document.items() if v is not None})


# -- what real registries send --------------------------------------------------------------------


def test_an_oci_manifest_becomes_typed_values() -> None:
    parsed = parse_image_manifest(manifest(annotations={"a": "b"}), NAME)
    assert parsed.config.digest == CONFIG["digest"]
    assert parsed.config.size == 6
    assert [(d.media_type, d.digest, d.size) for d in parsed.layers] == [
        (LAYER["mediaType"], LAYER["digest"], 5)
    ]
    assert parsed.annotations == {"a": "b"}


@pytest.mark.parametrize(
    "changes",
    [
        {"mediaType": None},  # umoci writes no top-level mediaType
        {"mediaType": mt.DOCKER_MANIFEST_V2},
        {"layers": None},
        {"layers": []},
        {"annotations": None},
        {"subject": {"digest": sha256(b"s"), "size": 1}, "artifactType": "x/y"},  # unknown fields
        {"config": {**CONFIG, "urls": ["https://x"], "data": "e30=", "unknown": {"nested": 1}}},
    ],
)
def test_real_manifest_variants_parse(changes: dict[str, Any]) -> None:
    assert isinstance(parse_image_manifest(manifest(**changes), NAME), ImageManifest)


def test_an_index_keeps_its_entries_and_platforms() -> None:
    document = {
        "schemaVersion": 2,
        "manifests": [
            {**LAYER, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {**CONFIG, "platform": {"os": "linux", "architecture": "amd64", "os.version": "1"}},
            {**CONFIG, "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
        ],
    }
    parsed = parse_index(body(document), "index x")
    platforms = [child.platform for child in parsed.manifests]
    assert [(p.os, p.architecture, p.variant) if p else None for p in platforms] == [
        ("linux", "arm64", "v8"),
        ("linux", "amd64", None),
        None,
    ]


def test_an_index_without_manifests_has_no_entries() -> None:
    assert parse_index(b'{"schemaVersion": 2}', "index x").manifests == ()


def test_an_image_config_gives_labels_and_how_it_runs() -> None:
    document = {
        "created": "2024-01-02T03:04:05.123456789Z",
        "architecture": "amd64",
        "config": {
            "Cmd": ["sh"],
            "Entrypoint": None,
            "Env": ["A=1"],
            "User": "u",
            "Labels": {"a": "1", "empty": None},
            "ExposedPorts": {"80/tcp": {}},
        },
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [{"created_by": "x"}],
    }
    parsed = parse_image_config(body(document), "image config x")
    assert parsed.created == "2024-01-02T03:04:05.123456789Z"
    assert parsed.config is not None
    assert (parsed.config.cmd, parsed.config.entrypoint, parsed.config.env) == (
        ("sh",),
        None,
        ("A=1",),
    )
    assert parsed.labels == {"a": "1", "empty": ""}


@pytest.mark.parametrize("document", [{}, {"config": None}, {"config": {"Labels": None}}])
def test_a_config_without_labels_has_none(document: dict[str, Any]) -> None:
    parsed = parse_image_config(body(document), "image config x")
    assert isinstance(parsed, ImageConfig)
    assert parsed.labels == {}


# -- what hostile registries send -----------------------------------------------------------------


HOSTILE_MANIFESTS = {
    "size as text": (manifest(config={**CONFIG, "size": "abc"}), "config.size: input should be"),
    "size as numeric text": (manifest(config={**CONFIG, "size": "6"}), "config.size"),
    "size as float": (manifest(config={**CONFIG, "size": 6.0}), "config.size"),
    "size as bool": (manifest(config={**CONFIG, "size": True}), "config.size"),
    "size negative": (manifest(config={**CONFIG, "size": -1}), "config.size: input should be"),
    "size past int64": (manifest(config={**CONFIG, "size": 2**63}), "config.size"),
    "size missing": (
        manifest(config={k: v for k, v in CONFIG.items() if k != "size"}),
        "config.size: field required",
    ),
    "layers a number": (manifest(layers=5), "layers: input should be a valid array"),
    "layers an object": (manifest(layers={"0": LAYER}), "layers: input should be a valid array"),
    "layer a string": (manifest(layers=["x"]), r"layers\[0\]: input should be an object"),
    "config a list": (manifest(config=["x"]), "config: input should be an object"),
    "config missing": (manifest(config=None), "config: field required"),
    "digest missing": (
        manifest(layers=[{"mediaType": "x", "size": 1}]),
        r"layers\[0\].digest: field required",
    ),
    "digest escapes": (
        manifest(layers=[{**LAYER, "digest": "sha256:../../etc/passwd"}]),
        r"layers\[0\].digest: not a sha256 or sha512 digest",
    ),
    "digest md5": (manifest(config={**CONFIG, "digest": "md5:" + "0" * 32}), "config.digest"),
    "digest upper-case": (
        manifest(config={**CONFIG, "digest": sha256(b"config").upper()}),
        "config.digest",
    ),
    "media type a number": (manifest(config={**CONFIG, "mediaType": 5}), "config.mediaType"),
    "annotation a number": (manifest(annotations={"a": 1}), "annotations.a: input should be"),
    "schemaVersion text": (manifest(schemaVersion="2"), "schemaVersion: input should be"),
    "top-level list": (b"[]", "not a JSON object"),
    "top-level string": (b'"manifest"', "not a JSON object"),
    "top-level null": (b"null", "not a JSON object"),
    "empty": (b"", "not JSON: EOF"),
    "deeply nested": (b"[" * 100_000, "not JSON: recursion limit exceeded"),
    "deeply nested inside": (
        b'{"annotations": ' + b"[" * 100_000,
        "not JSON: recursion limit exceeded",
    ),
    "5000-digit number": (
        manifest(config={**CONFIG, "size": 271828}).replace(b"271828", b"9" * 5000),
        "not JSON: number out of range",
    ),
    "not utf-8": (b'{"mediaType": "\xff"}', "not JSON"),
    "NaN": (
        manifest(config={**CONFIG, "size": 1}).replace(b'"size": 1', b'"size": NaN'),
        "config.size: input should be a valid integer",
    ),
    "trailing garbage": (manifest() + b"x", "not JSON: trailing characters"),
    "byte-order mark": (b"\xef\xbb\xbf" + manifest(), "not JSON"),
}


@pytest.mark.parametrize("name", list(HOSTILE_MANIFESTS))
def test_a_malformed_manifest_is_one_line_naming_it(name: str) -> None:
    data, problem = HOSTILE_MANIFESTS[name]
    with pytest.raises(ImageError, match=problem) as caught:
        parse_image_manifest(data, NAME)
    message = str(caught.value)
    assert message.startswith(f"the registry sent an invalid {NAME}: "), message
    assert "\n" not in message
    assert len(message) < 300


HOSTILE_INDEXES = {
    "platform as text": (
        [{**CONFIG, "platform": "linux/amd64"}],
        r"manifests\[0\].platform: input should be an object",
    ),
    "platform without os": (
        [{**CONFIG, "platform": {"architecture": "amd64"}}],
        r"manifests\[0\].platform.os: field required",
    ),
    "child without digest": (
        [{"mediaType": mt.OCI_MANIFEST, "size": 1}],
        r"manifests\[0\].digest: field required",
    ),
    "child digest null": ([{**CONFIG, "digest": None}], r"manifests\[0\].digest"),
    "child a string": (["sha256:abc"], r"manifests\[0\]: input should be an object"),
    "manifests an object": ({}, "manifests: input should be a valid array"),
}


@pytest.mark.parametrize("name", list(HOSTILE_INDEXES))
def test_a_malformed_index_is_one_line_naming_it(name: str) -> None:
    children, problem = HOSTILE_INDEXES[name]
    data = body({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": children})
    with pytest.raises(ImageError, match=problem) as caught:
        parse_index(data, "index example.com/app@sha256:abc")
    assert str(caught.value).startswith(
        "the registry sent an invalid index example.com/app@sha256:abc: "
    )


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"config": {"Labels": {"a": 5}}}, "config.Labels.a: input should be a valid string"),
        ({"config": {"Cmd": "sh"}}, "config.Cmd: input should be a valid array"),
        ({"config": {"Env": [1]}}, r"config.Env\[0\]: input should be a valid string"),
        ({"config": {"User": 0}}, "config.User: input should be a valid string"),
        ({"config": "x"}, "config: input should be an object"),
        ({"created": 5}, "created: input should be a valid string"),
        ([1], "not a JSON object"),
    ],
)
def test_a_malformed_image_config_is_one_line_naming_it(document: Any, problem: str) -> None:
    with pytest.raises(ImageError, match=problem) as caught:
        parse_image_config(body(document), "image config example.com/app@sha256:abc")
    assert str(caught.value).startswith("the registry sent an invalid image config ")


def test_several_problems_are_counted_not_listed() -> None:
    data = manifest(config={**CONFIG, "size": "x", "digest": 5}, layers=5)
    with pytest.raises(ImageError, match=r"\(and 2 more problems\)$"):
        parse_image_manifest(data, NAME)


@pytest.mark.parametrize(
    "key",
    ["a\nerror: forged", "\x00", "a\u2028b", "x" * 1000, "é ü"],
    ids=["newline", "nul", "line-separator", "long", "non-ascii"],
)
def test_hostile_keys_are_escaped_and_shortened(key: str) -> None:
    with pytest.raises(ImageError) as caught:
        parse_image_manifest(manifest(annotations={key: 1}), NAME)
    message = str(caught.value)
    assert message.isascii()
    assert message.isprintable()
    assert len(message) < 300


def test_a_document_past_the_limit_is_refused_unread() -> None:
    data = manifest(annotations={"a": "x" * MAX_DOCUMENT_BYTES})
    with pytest.raises(ImageError, match=f"more than the {MAX_DOCUMENT_BYTES} bytes allowed"):
        parse_image_manifest(data, NAME)


def test_local_documents_are_not_blamed_on_a_registry() -> None:
    with pytest.raises(ImageError, match=r"^invalid index.json: not JSON"):
        parse_index(b"{", "index.json", sender=None)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"[" * 100_000, "x is not JSON: recursion limit exceeded"),
        (b"[" + b"9" * 5000 + b"]", "x is not JSON: number out of range"),
        (b'"\xff"', "x is not JSON"),
        (b" " * (MAX_DOCUMENT_BYTES + 1), "x is larger than"),
    ],
)
def test_load_json_turns_every_failure_into_one_line(data: bytes, problem: str) -> None:
    with pytest.raises(ImageError, match=problem):
        load_json(data, "x")


@pytest.mark.parametrize(
    ("data", "declared"),
    [
        (manifest(), mt.OCI_MANIFEST),
        (manifest(mediaType=None), ""),
        (manifest(mediaType=5), ""),
        (b"[" * 100_000, ""),
        (b"\xff", ""),
        (b"[]", ""),
    ],
)
def test_the_declared_media_type_never_fails(data: bytes, declared: str) -> None:
    assert mt.declared_media_type(data) == declared


# -- telling an index from an image ---------------------------------------------------------------

INDEX = body(
    {"schemaVersion": 2, "manifests": [{**CONFIG, "platform": {"os": "a", "architecture": "b"}}]}
)


@pytest.mark.parametrize(
    ("data", "media_type", "kind"),
    [
        (manifest(), mt.OCI_MANIFEST, ImageManifest),
        (manifest(), mt.DOCKER_MANIFEST_V2, ImageManifest),
        (manifest(mediaType=None), "application/json", ImageManifest),  # umoci via a proxy
        (manifest(mediaType=None), "", ImageManifest),
        (INDEX, mt.OCI_INDEX, Index),
        (INDEX, mt.DOCKER_MANIFEST_LIST, Index),
        (INDEX, "", Index),  # shaped like an index
        (body({"mediaType": mt.OCI_INDEX, "manifests": []}), "text/plain", Index),
    ],
)
def test_parse_manifest_tells_an_index_from_an_image(
    data: bytes, media_type: str, kind: type[object]
) -> None:
    assert isinstance(parse_manifest(data, media_type, "sha256:abc"), kind)


def test_an_index_served_as_an_image_is_an_invalid_image() -> None:
    with pytest.raises(ImageError, match="invalid manifest sha256:abc: config: field required"):
        parse_manifest(INDEX, mt.OCI_MANIFEST, "sha256:abc")


@pytest.mark.parametrize("media_type", [mt.DOCKER_MANIFEST_V1, mt.DOCKER_MANIFEST_V1_SIGNED])
def test_schema_1_is_refused_as_unsupported(media_type: str) -> None:
    with pytest.raises(UnsupportedMedia, match="schema 1"):
        parse_manifest(b'{"schemaVersion": 1}', media_type, "sha256:abc")


def test_select_child_matches_platform_and_variant() -> None:
    def child(n: int, platform: dict[str, str] | None) -> dict[str, Any]:
        entry = {"mediaType": mt.OCI_MANIFEST, "digest": sha256(str(n).encode()), "size": n}
        return {**entry, "platform": platform} if platform else entry

    index = parse_index(
        body(
            {
                "manifests": [
                    child(1, {"os": "linux", "architecture": "arm", "variant": "v6"}),
                    child(2, {"os": "linux", "architecture": "arm", "variant": "v7"}),
                    child(3, None),
                ]
            }
        ),
        "index x",
    )

    def pick(os: str, arch: str, variant: str | None = None) -> int | None:
        found = select_child(index, Platform(os, arch, variant))
        return found.size if found else None

    assert pick("linux", "arm") == 1
    assert pick("linux", "arm", "v7") == 2
    assert pick("linux", "amd64") == 3  # no platform means linux/amd64
    assert pick("linux", "amd64", "v2") is None
    assert pick("windows", "amd64") is None

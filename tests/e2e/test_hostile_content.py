"""Malformed registry documents through `regwatch check` and `in`: one line, nothing written.

A real registry refuses to store most of these, so the fault registry serves them
(``tests.hostile``). Every document's digest is computed from the bytes served, so what stops
the command is the parser, not a digest check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.steps import Run, assert_fails, step
from tests.faults import DOCKER_MANIFEST, Reply, bearer_challenge, sha256_digest
from tests.hostile import (
    OCI_CONFIG,
    OCI_INDEX,
    HostileRegistry,
    Served,
    blobs_of,
    config_body,
    descriptor,
    index_body,
    manifest_body,
    serve_image,
)

REPO = "team/app"
CONFIG = config_body(config={"Cmd": ["sh"], "Labels": {"a": "1"}})
LAYER = b"\x1f\x8b not really a layer"
DEEP = b"[" * 100_000


@pytest.fixture
def registry() -> Iterator[HostileRegistry]:
    with HostileRegistry() as fake:
        yield fake
    assert fake.server_errors == [], "the fault registry crashed while answering"


@dataclass(frozen=True)
class Case:
    """One hostile image: what is served, and what the error line must say."""

    serve: Callable[[HostileRegistry], Served]
    says: str
    """The thing named: "manifest", "index" or "image config"."""
    detail: str


def hostile_manifest(body: bytes, media_type: str | None = DOCKER_MANIFEST) -> Case:
    def serve(registry: HostileRegistry) -> Served:
        return serve_image(
            registry, REPO, body, media_type=media_type, blobs=blobs_of(CONFIG, LAYER)
        )

    return Case(serve, "manifest", "")


def with_detail(case: Case, says: str, detail: str) -> Case:
    return Case(case.serve, says, detail)


def fields(**changes: object) -> bytes:
    return manifest_body(CONFIG, (LAYER,), **changes)


def hostile_index(body: bytes) -> Case:
    def serve(registry: HostileRegistry) -> Served:
        return serve_image(registry, REPO, body, media_type=OCI_INDEX)

    return Case(serve, "index", "")


def hostile_config(config: bytes) -> Case:
    def serve(registry: HostileRegistry) -> Served:
        body = manifest_body(config, (LAYER,))
        return serve_image(registry, REPO, body, blobs=blobs_of(config, LAYER))

    return Case(serve, "image config", "")


CHILD = {"mediaType": DOCKER_MANIFEST, "digest": sha256_digest(b"x"), "size": 1}
CONFIG_DESCRIPTOR = descriptor(OCI_CONFIG, CONFIG)

CASES = {
    "size-is-text": with_detail(
        hostile_manifest(fields(config={**CONFIG_DESCRIPTOR, "size": "abc"})),
        "manifest",
        "config.size: input should be a valid integer",
    ),
    "size-missing": with_detail(
        hostile_manifest(fields(config={"mediaType": OCI_CONFIG, "digest": sha256_digest(CONFIG)})),
        "manifest",
        "config.size",
    ),
    "size-negative": with_detail(
        hostile_manifest(fields(config={**CONFIG_DESCRIPTOR, "size": -1})),
        "manifest",
        "config.size",
    ),
    "size-5000-digits": with_detail(
        hostile_manifest(
            fields(config={**CONFIG_DESCRIPTOR, "size": 271828}).replace(b"271828", b"9" * 5000)
        ),
        "manifest",
        "not JSON: number out of range",
    ),
    "layers-is-a-number": with_detail(
        hostile_manifest(fields(layers=5)), "manifest", "layers: input should be a valid array"
    ),
    "config-is-a-list": with_detail(
        hostile_manifest(fields(config=["x"])), "manifest", "config: input should be an object"
    ),
    "config-missing": with_detail(
        hostile_manifest(fields(config=None)), "manifest", "config: field required"
    ),
    "layer-digest-escapes": with_detail(
        hostile_manifest(fields(layers=[{**CONFIG_DESCRIPTOR, "digest": "sha256:../../x"}])),
        "manifest",
        "layers[0].digest: not a sha256 or sha512 digest",
    ),
    "annotation-not-text": with_detail(
        hostile_manifest(fields(annotations={"a\nb": 1})),
        "manifest",
        "annotations['a\\nb']: input should be a valid string",
    ),
    "deeply-nested": with_detail(
        hostile_manifest(DEEP), "manifest", "not JSON: recursion limit exceeded"
    ),
    "deeply-nested-untyped": with_detail(hostile_manifest(DEEP, None), "manifest", "not JSON"),
    "not-utf8": with_detail(hostile_manifest(b'{"a": "\xff"}'), "manifest", "not JSON"),
    "top-level-list": with_detail(hostile_manifest(b"[]"), "manifest", "not a JSON object"),
    "platform-is-text": with_detail(
        hostile_index(index_body({**CHILD, "platform": "linux/amd64"})),
        "index",
        "manifests[0].platform: input should be an object",
    ),
    "child-without-digest": with_detail(
        hostile_index(index_body({"mediaType": DOCKER_MANIFEST, "size": 1})),
        "index",
        "manifests[0].digest: field required",
    ),
    "manifests-is-an-object": with_detail(
        hostile_index(b'{"schemaVersion": 2, "manifests": {}}'),
        "index",
        "manifests: input should be a valid array",
    ),
    "config-deeply-nested": with_detail(
        hostile_config(DEEP), "image config", "not JSON: recursion limit exceeded"
    ),
    "config-label-not-text": with_detail(
        hostile_config(config_body(config={"Labels": {"a": 5}})),
        "image config",
        "config.Labels.a",
    ),
    "config-cmd-is-text": with_detail(
        hostile_config(config_body(config={"Cmd": "sh"})),
        "image config",
        "config.Cmd: input should be a valid array",
    ),
    "image-config-is-a-list": with_detail(
        hostile_config(b"[1]"), "image config", "not a JSON object"
    ),
}


def assert_names_the_document(
    run: Run, case: Case, served: Served, registry: HostileRegistry
) -> None:
    assert_fails(run, f"the registry sent an invalid {case.says} ", case.detail)
    line = next(line for line in run.stderr.splitlines() if line.startswith("error:"))
    if case.says != "image config":
        assert f"{registry.host}/{REPO}@{served.digest}" in line, line
    assert "internal error" not in line


@pytest.mark.parametrize("name", list(CASES))
def test_in_refuses_invalid_documents_and_writes_nothing(
    registry: HostileRegistry, tmp_path: Path, name: str
) -> None:
    case = CASES[name]
    served = case.serve(registry)
    destination = tmp_path / "dest"
    request = {
        "source": {"repository": f"{registry.host}/{REPO}"},
        "version": {"tag": served.tag, "digest": served.digest},
    }

    run = step("in", request, destination)

    assert_names_the_document(run, case, served, registry)
    assert os.listdir(destination) == []


@pytest.mark.parametrize("fmt", ["oci", "oci-layout"])
@pytest.mark.parametrize("name", ["layers-is-a-number", "child-without-digest", "deeply-nested"])
def test_in_refuses_invalid_documents_in_every_format(
    registry: HostileRegistry, tmp_path: Path, name: str, fmt: str
) -> None:
    case = CASES[name]
    served = case.serve(registry)
    destination = tmp_path / "dest"
    request = {
        "source": {"repository": f"{registry.host}/{REPO}"},
        "version": {"tag": served.tag, "digest": served.digest},
        "params": {"format": fmt},
    }

    run = step("in", request, destination)

    assert_names_the_document(run, case, served, registry)
    assert os.listdir(destination) == []


@pytest.mark.parametrize(
    "name",
    [
        "size-is-text",
        "layers-is-a-number",
        "deeply-nested",
        "platform-is-text",
        "child-without-digest",
        "config-deeply-nested",
        "config-label-not-text",
    ],
)
def test_check_refuses_invalid_documents(registry: HostileRegistry, name: str) -> None:
    case = CASES[name]
    served = case.serve(registry)
    source = {
        "repository": f"{registry.host}/{REPO}",
        "tag_regex": "^v1$",
        "created_at_sort": True,
    }

    run = step("check", {"source": source})

    assert_names_the_document(run, case, served, registry)


def test_a_tag_check_resolves_a_deep_manifest_without_reading_it(
    registry: HostileRegistry,
) -> None:
    """Tag mode only needs the digest; a GET without type or digest headers must not crash."""
    served = serve_image(registry, REPO, DEEP, media_type=None, digest_header=False)

    run = step("check", {"source": {"repository": f"{registry.host}/{REPO}", "tag": "v1"}})

    assert run.code == 0, run.stderr
    assert run.answer == [{"tag": "v1", "digest": served.digest}]


@pytest.mark.parametrize("name", ["config-label-not-text", "config-deeply-nested"])
def test_in_without_download_still_writes_nothing_for_an_invalid_config(
    registry: HostileRegistry, tmp_path: Path, name: str
) -> None:
    """With `skip_download`, `label_regex` fetches the config only after the manifest."""
    case = CASES[name]
    served = case.serve(registry)
    destination = tmp_path / "dest"
    request = {
        "source": {"repository": f"{registry.host}/{REPO}", "label_regex": ".*"},
        "version": {"tag": served.tag, "digest": served.digest},
        "params": {"skip_download": True},
    }

    run = step("in", request, destination)

    assert_names_the_document(run, case, served, registry)
    assert os.listdir(destination) == []


LENIENT = {
    "umoci-no-media-type": (manifest_body(CONFIG, (), mediaType=None), None),
    "served-as-json": (manifest_body(CONFIG, ()), "application/json"),
    "unknown-fields": (
        manifest_body(CONFIG, (), subject={"digest": sha256_digest(b"s"), "size": 1}, x=[{}]),
        DOCKER_MANIFEST,
    ),
    "layers-null": (manifest_body(CONFIG, (), layers=None), DOCKER_MANIFEST),
}


@pytest.mark.parametrize("name", list(LENIENT))
def test_what_real_registries_legitimately_send_is_accepted(
    registry: HostileRegistry, tmp_path: Path, name: str
) -> None:
    body, media_type = LENIENT[name]
    served = serve_image(registry, REPO, body, media_type=media_type, blobs=blobs_of(CONFIG))
    request = {
        "source": {"repository": f"{registry.host}/{REPO}", "label_regex": ".*"},
        "version": {"tag": served.tag, "digest": served.digest},
    }

    run = step("in", request, tmp_path / "dest")

    assert run.code == 0, run.stderr
    assert {"name": "a", "value": "1"} in run.answer["metadata"]
    assert (tmp_path / "dest/metadata.json").read_text() == (
        '{"cmd":["sh"],"entrypoint":null,"env":null,"user":""}\n'
    )


@pytest.mark.parametrize(
    ("args", "target", "status", "message"),
    [
        (("tags",), f"/v2/{REPO}/tags/list", 200, "the registry answered with invalid JSON"),
        (("tags",), f"/v2/{REPO}/tags/list", 400, "list tags of"),
        (("digest",), f"/v2/{REPO}/manifests/v1", 403, "403"),
    ],
    ids=["tag-list", "tag-list-error", "manifest-error"],
)
def test_deeply_nested_listings_and_error_bodies_are_one_line(
    registry: HostileRegistry, args: tuple[str, ...], target: str, status: int, message: str
) -> None:
    """Not only documents: every JSON body the client reads survives `[` × 100000."""
    registry.route("GET", target, Reply(status, DEEP, {"Content-Type": "application/json"}))
    reference = f"{registry.host}/{REPO}" + (":v1" if args == ("digest",) else "")
    command = [shutil.which("regwatch") or "regwatch", *args, reference]

    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    assert done.returncode == 1, done
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("regwatch: "), done.stderr
    assert message in done.stderr
    assert "internal error" not in done.stderr


def test_a_deeply_nested_token_answer_is_one_line(registry: HostileRegistry) -> None:
    registry.route("GET", "/v2/", bearer_challenge(f"{registry.url}/token"))
    registry.route("GET", "/token", Reply(200, DEEP, {"Content-Type": "application/json"}))
    command = [shutil.which("regwatch") or "regwatch", "tags", f"{registry.host}/{REPO}"]

    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    assert done.returncode == 1, done
    assert done.stderr.count("\n") == 1, done.stderr
    assert "token service answered with invalid JSON" in done.stderr

"""What users type is checked before any request (issue 8): tags, digests, payload types, paths.

The fault registry records every request, so "nothing reached the registry" is asserted, not
assumed; real registries show that what is valid still works the way the Go resource does.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regwatch.refs import Repository
from tests import images
from tests.e2e.steps import Run, assert_fails, client_for, step
from tests.e2e.test_cli import assert_one_line_error, regwatch
from tests.faults import (
    FaultRegistry,
    manifest_path,
    manifest_reply,
    tags_path,
    tags_reply,
    unavailable,
)
from tests.registries import RegistryServer

DIGEST = "sha256:" + "ab" * 32

INVALID_TAGS = [
    "foo:bar",
    "feature?x",
    "../../../victim/other/manifests/pwned",
    "a/b",
    "x#frag",
    "with space",
    "-leading-dash",
    ".leading-dot",
    "a" * 129,
    "tab\there",
    "nul\x00",
    "ünïcode",
]

INVALID_DIGESTS = [
    "md5:abc",
    "sha256:short",
    "sha256:" + "A" * 64,
    "sha256:../../../x" + "a" * 47,
    "sha512:" + "a" * 64,
    "latest",
]


@pytest.fixture
def fault() -> Iterator[FaultRegistry]:
    """A registry that answers 500 to every manifest: the answer that used to be retried."""
    with FaultRegistry() as registry:
        for reference in ["foo:bar", "md5:abc", "latest"]:
            registry.route("GET", manifest_path("app", reference), unavailable(500))
            registry.route("HEAD", manifest_path("app", reference), unavailable(500))
        yield registry
    assert registry.server_errors == []


def assert_untouched(fault: FaultRegistry) -> None:
    assert fault.seen == [], [request.target for request in fault.seen]
    assert fault.tls_probes == 0


def run_step(name: str, request: dict[str, Any] | str, directory: Path) -> Run:
    return step(name, request, directory if name != "check" else None)


def request_for(name: str, source: dict[str, Any], **extra: Any) -> dict[str, Any]:
    if name == "in":
        return {"source": source, "version": {"tag": "v1", "digest": DIGEST}, **extra}
    if name == "out":
        return {"source": source, "params": {"image": "img"}, **extra}
    return {"source": source, **extra}


# -- tags and digests: finding 1 and 6 -----------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "tag"),
    [
        *(("check", tag) for tag in INVALID_TAGS[:3]),
        ("in", INVALID_TAGS[2]),
        ("out", INVALID_TAGS[1]),
    ],
)
def test_an_invalid_source_tag_fails_before_any_request(
    fault: FaultRegistry, tmp_path: Path, command: str, tag: str
) -> None:
    source = {"repository": f"{fault.host}/app", "tag": tag}
    run = run_step(command, request_for(command, source), tmp_path)
    assert_fails(run, "invalid payload: source.tag: invalid tag")
    assert_untouched(fault)


@pytest.mark.parametrize(
    ("command", "digest"),
    [("check", INVALID_DIGESTS[0]), ("check", INVALID_DIGESTS[3]), ("in", INVALID_DIGESTS[0])],
)
def test_an_invalid_cursor_digest_fails_at_once(
    fault: FaultRegistry, tmp_path: Path, command: str, digest: str
) -> None:
    source = {"repository": f"{fault.host}/app", "tag": "v1"}
    version = {"tag": "v1", "digest": digest}
    run = run_step(command, {"source": source, "version": version}, tmp_path)
    assert_fails(run, "invalid payload: version.digest: invalid digest")
    assert_untouched(fault)


@pytest.mark.parametrize(
    ("command", "tag"),
    [("check", INVALID_TAGS[0]), ("in", INVALID_TAGS[2])],
)
def test_an_invalid_cursor_tag_fails_at_once(
    fault: FaultRegistry, tmp_path: Path, command: str, tag: str
) -> None:
    version = {"tag": tag, "digest": DIGEST}
    run = run_step(
        command, {"source": {"repository": f"{fault.host}/app"}, "version": version}, tmp_path
    )
    assert_fails(run, "invalid payload: version.tag: invalid tag")
    assert_untouched(fault)


def test_in_without_a_digest_fails_at_once(fault: FaultRegistry, tmp_path: Path) -> None:
    run = step("in", {"source": {"repository": f"{fault.host}/app"}}, tmp_path)
    assert_fails(run, "version.digest: invalid digest ''")
    assert_untouched(fault)


@pytest.mark.parametrize(
    ("words", "prefix", "fragment"),
    [
        ("ok feature?x", None, "invalid tag 'feature?x'"),
        ("../../../victim/other/manifests/pwned", None, "manifests/pwned'"),
        ("one two", "-", "tag_prefix '-': invalid tag '-one'"),
        ("a\x1cb", None, "invalid tag 'a\\x1cb'"),  # Go's Fields does not split at \x1c
    ],
)
def test_invalid_additional_tags_fail_before_any_request(
    fault: FaultRegistry, tmp_path: Path, words: str, prefix: str | None, fragment: str
) -> None:
    """No blob upload, no tag listing for aliases: not a single request."""
    (tmp_path / "tags").write_text(words)
    params = {"image": "img", "version": "1.2.3", "bump_aliases": True, "additional_tags": "tags"}
    if prefix is not None:
        params["tag_prefix"] = prefix
    run = step("out", {"source": {"repository": f"{fault.host}/app"}, "params": params}, tmp_path)
    assert_fails(run, "params.additional_tags", fragment)
    assert_untouched(fault)


@pytest.mark.parametrize(
    ("source", "params", "fragment"),
    [
        ({}, {"version": "1.2.3+build.1"}, "params.version: invalid tag '1.2.3+build.1'"),
        ({"variant": "a/b"}, {"version": "1.2.3"}, "params.version: invalid tag '1.2.3-a/b'"),
        (
            {"variant": ".x"},
            {"version": "1.2.3", "bump_aliases": True},
            "params.version with bump_aliases: invalid tag '.x'",
        ),
    ],
)
def test_version_derived_tags_are_checked_before_any_request(
    fault: FaultRegistry,
    tmp_path: Path,
    source: dict[str, Any],
    params: dict[str, Any],
    fragment: str,
) -> None:
    request = {
        "source": {"repository": f"{fault.host}/app", **source},
        "params": {"image": "img", **params},
    }
    assert_fails(step("out", request, tmp_path), fragment)
    assert_untouched(fault)


def test_a_registry_listing_invalid_tags_cannot_steer_requests() -> None:
    """Names no registry can hold are ignored with a warning; no request carries them."""
    body = b'{"schemaVersion":2}'
    with FaultRegistry() as fault:
        fault.route(
            "GET", tags_path("app"), tags_reply("app", ["1.0.0", "../../other/manifests/x"])
        )
        fault.route("HEAD", manifest_path("app", "1.0.0"), manifest_reply(body))
        run = step("check", {"source": {"repository": f"{fault.host}/app", "tag_regex": "."}})
        assert run.code == 0, run.stderr
        assert [v["tag"] for v in run.answer] == ["1.0.0"]
        assert "1 invalid tag name" in run.stderr
        assert all("other" not in request.target for request in fault.seen)


@pytest.mark.parametrize(
    "argument",
    ["app:feature?x", "app@md5:abc", "app:-x"],
)
def test_digest_command_checks_the_reference_before_any_request(
    fault: FaultRegistry, argument: str
) -> None:
    assert_one_line_error(regwatch("digest", f"{fault.host}/{argument}"), "invalid")
    assert_untouched(fault)


# -- finding 24 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [":latest", f"@{DIGEST}"])
def test_tags_refuses_a_reference(fault: FaultRegistry, suffix: str) -> None:
    run = regwatch("tags", f"{fault.host}/app{suffix}")
    assert_one_line_error(run, "tags takes a repository, not a reference")
    assert_untouched(fault)


# -- payload types: finding 20 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "field", "value", "fragment"),
    [
        ("check", "insecure", "yes", "string into Go struct field source.insecure of type bool"),
        ("check", "concurrency", "8", "string into Go struct field source.concurrency of type int"),
        ("check", "ca_certs", ["ok", 1], "number into Go struct field source.ca_certs[1]"),
        ("out", "insecure", "yes", "source.insecure of type bool"),
    ],
)
def test_payload_types_are_strict_as_in_go(
    fault: FaultRegistry, tmp_path: Path, command: str, field: str, value: Any, fragment: str
) -> None:
    source = {"repository": f"{fault.host}/app", field: value}
    run = run_step(command, request_for(command, source), tmp_path)
    assert_fails(run, "invalid payload: json: cannot unmarshal", fragment)
    assert_untouched(fault)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"skip_download": "yes"}, "string into Go struct field params.skip_download of type bool"),
    ],
)
def test_get_params_are_strict(
    fault: FaultRegistry, tmp_path: Path, params: dict[str, Any], fragment: str
) -> None:
    request = request_for("in", {"repository": f"{fault.host}/app"}, params=params)
    assert_fails(step("in", request, tmp_path), fragment)
    assert_untouched(fault)


def test_put_params_are_strict(fault: FaultRegistry, tmp_path: Path) -> None:
    params = {"image": "img", "version": "1.0.0", "bump_aliases": "true"}
    request = {"source": {"repository": f"{fault.host}/app"}, "params": params}
    assert_fails(step("out", request, tmp_path), "params.bump_aliases of type bool")
    assert_untouched(fault)


def test_null_means_unset_as_in_go(plain_registry: RegistryServer) -> None:
    item = images.image("nulls")
    repo = Repository(plain_registry.host, f"input/{uuid.uuid4().hex[:10]}")
    images.push(client_for(plain_registry), repo, "stable", item)
    source = {"repository": str(repo), "tag": "stable", "insecure": None, "concurrency": None}
    run = step("check", {"source": source, "version": None})
    assert run.code == 0, run.stderr
    assert run.answer == [{"tag": "stable", "digest": item.digest}]


# -- numeric tags keep their JSON text: finding 16 -------------------------------------------------


@pytest.mark.parametrize("raw", ["1e5", "42.10"])
def test_a_numeric_tag_keeps_its_json_text(plain_registry: RegistryServer, raw: str) -> None:
    item = images.image(f"number-{raw}")
    repo = Repository(plain_registry.host, f"input/{uuid.uuid4().hex[:10]}")
    images.push(client_for(plain_registry), repo, raw, item)
    run = step("check", f'{{"source": {{"repository": "{repo}", "tag": {raw}}}}}')
    assert run.code == 0, run.stderr
    assert run.answer == [{"tag": raw, "digest": item.digest}]


@pytest.mark.parametrize("raw", ["-0"])
def test_a_numeric_tag_that_is_no_tag_is_refused(fault: FaultRegistry, raw: str) -> None:
    run = step("check", f'{{"source": {{"repository": "{fault.host}/app", "tag": {raw}}}}}')
    assert_fails(run, f"invalid tag '{raw}'")
    assert_untouched(fault)


def test_out_pushes_a_numeric_tag_as_written(
    plain_registry: RegistryServer, tmp_path: Path
) -> None:
    item = images.image("numeric-out")
    layout = images.write_oci_layout(tmp_path / "img", "v", item)
    (layout / "single-image-digest").write_text(item.digest)
    repo = f"{plain_registry.host}/input/{uuid.uuid4().hex[:10]}"
    request = f'{{"source": {{"repository": "{repo}", "tag": 2.50}}, "params": {{"image": "img"}}}}'
    run = step("out", request, tmp_path)
    assert run.code == 0, run.stderr
    assert run.answer["version"] == {"tag": "2.50", "digest": item.digest}


# -- clear lines for what a new user hit: finding 15 -----------------------------------------------


@pytest.mark.parametrize(
    ("command", "source"),
    [("check", {}), ("in", {"repository": ""}), ("out", {"repository": None})],
)
def test_a_missing_repository_is_named(
    tmp_path: Path, command: str, source: dict[str, Any]
) -> None:
    run = run_step(command, request_for(command, source), tmp_path)
    assert_fails(run, "invalid payload: source.repository is required")
    assert "checking origin" not in run.stderr


@pytest.mark.parametrize("params", [{}, {"image": None, "version": "1.0.0"}])
def test_out_without_an_image_says_it_is_required(
    fault: FaultRegistry, tmp_path: Path, params: dict[str, Any]
) -> None:
    run = step("out", {"source": {"repository": f"{fault.host}/app"}, "params": params}, tmp_path)
    assert_fails(run, "params.image is required")
    assert "None" not in run.stderr
    assert_untouched(fault)


@pytest.mark.parametrize(
    ("request_text", "fragment"),
    [
        ('{"source": {"repository": "x", "concurrency": ' + "9" * 5000 + "}}", "cannot unmarshal"),
        ("[" * 100_000, "nested too deeply"),
        ('{"source": {"repository": "x", "tag": NaN}}', "NaN is not a JSON value"),
    ],
)
def test_hostile_json_is_one_invalid_payload_line(request_text: str, fragment: str) -> None:
    run = step("check", request_text)
    assert_fails(run, "invalid payload", fragment)
    assert "UTF-8" not in run.stderr
    assert len(run.stderr) < 2000


@pytest.mark.parametrize(
    ("version", "fragment"),
    [
        ("1.2.30000000000000000000000000000", "version segment 30000000000000000000000000000 is"),
        ("1." + "9" * 5000 + ".0", "version segment of 5000 digits is too large"),
        ("1.0.0-rc.01", "version segment starts with 0"),
    ],
)
def test_a_bad_version_says_what_is_wrong(
    fault: FaultRegistry, tmp_path: Path, version: str, fragment: str
) -> None:
    params = {"image": "img", "version": version}
    run = step("out", {"source": {"repository": f"{fault.host}/app"}, "params": params}, tmp_path)
    assert_fails(run, fragment)
    if "large" in fragment:
        assert "starts with 0" not in run.stderr
    assert_untouched(fault)


@pytest.mark.parametrize("kind", ["fifo", "directory", "huge"])
def test_an_additional_tags_file_that_is_no_small_file_fails_clearly(
    fault: FaultRegistry, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "tags"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path.write_text("t " * 600_000)
    params = {"image": "img", "version": "1.0.0", "additional_tags": "tags"}
    run = step("out", {"source": {"repository": f"{fault.host}/app"}, "params": params}, tmp_path)
    assert_fails(run, "could not parse additional tags: failed to read file at")
    assert_untouched(fault)


# -- tag and tag_regex: finding 19 -----------------------------------------------------------------


@pytest.mark.parametrize("regex", ["("])
def test_tag_wins_over_tag_regex_with_a_warning(plain_registry: RegistryServer, regex: str) -> None:
    item = images.image("tag-wins")
    repo = Repository(plain_registry.host, f"input/{uuid.uuid4().hex[:10]}")
    images.push(client_for(plain_registry), repo, "stable", item)
    images.push(client_for(plain_registry), repo, "other", images.image("other"))
    run = step("check", {"source": {"repository": str(repo), "tag": "stable", "tag_regex": regex}})
    assert run.code == 0, run.stderr
    assert run.answer == [{"tag": "stable", "digest": item.digest}]
    warnings = [line for line in run.stderr.splitlines() if "tag_regex" in line]
    assert len(warnings) == 1, run.stderr
    assert "ignored" in warnings[0]


def test_no_warning_without_both(plain_registry: RegistryServer) -> None:
    item = images.image("only-tag")
    repo = Repository(plain_registry.host, f"input/{uuid.uuid4().hex[:10]}")
    images.push(client_for(plain_registry), repo, "stable", item)
    run = step("check", {"source": {"repository": str(repo), "tag": "stable"}})
    assert run.code == 0, run.stderr
    assert "tag_regex" not in run.stderr


# -- paths below SRC as Go finds them: finding 18 --------------------------------------------------


@pytest.fixture
def two_layouts(tmp_path: Path) -> tuple[Path, images.Image, images.Image]:
    found = []
    for name in ("img-a", "img-b"):
        item = images.image(f"glob-{name}-{uuid.uuid4().hex[:6]}")
        layout = images.write_oci_layout(tmp_path / "src" / name, "v", item)
        (layout / "single-image-digest").write_text(item.digest)
        found.append(item)
    return tmp_path / "src", found[0], found[1]


@pytest.mark.parametrize(
    ("pattern", "which"),
    [
        ("img-[^b]", "a"),
        ("img-[^a]", "b"),
        ("/img-a", "a"),
        ("/img-[!b]", "b"),  # `!` is an ordinary character: the class is {!, b}
        ("sub/../img-?[^b]*", None),
    ],
)
def test_image_paths_follow_go_filepath(
    plain_registry: RegistryServer,
    two_layouts: tuple[Path, images.Image, images.Image],
    pattern: str,
    which: str | None,
) -> None:
    src, a, b = two_layouts
    repo = f"{plain_registry.host}/input/{uuid.uuid4().hex[:10]}"
    request = {"source": {"repository": repo, "tag": "t"}, "params": {"image": pattern}}
    run = step("out", request, src)
    if which is None:
        assert_fails(run, f"no files match glob '{pattern}'")
        return
    assert run.code == 0, run.stderr
    assert run.answer["version"]["digest"] == (a if which == "a" else b).digest


def test_dot_dot_steps_out_of_src_as_in_go(
    plain_registry: RegistryServer, two_layouts: tuple[Path, images.Image, images.Image]
) -> None:
    src, a, _ = two_layouts
    inner = src / "inner"
    inner.mkdir()
    repo = f"{plain_registry.host}/input/{uuid.uuid4().hex[:10]}"
    request = {"source": {"repository": repo, "tag": "t"}, "params": {"image": "../img-a"}}
    run = step("out", request, inner)
    assert run.code == 0, run.stderr
    assert run.answer["version"]["digest"] == a.digest


@pytest.mark.parametrize("name", ["/tags", "sub/../tags"])
def test_additional_tags_file_is_joined_below_src(
    plain_registry: RegistryServer,
    two_layouts: tuple[Path, images.Image, images.Image],
    name: str,
) -> None:
    src, a, _ = two_layouts
    (src / "tags").write_text("one\u00a0two\u2003three\n")  # Go's Fields splits at these
    repo = f"{plain_registry.host}/input/{uuid.uuid4().hex[:10]}"
    params = {"image": "img-a", "additional_tags": name}
    run = step("out", {"source": {"repository": repo}, "params": params}, src)
    assert run.code == 0, run.stderr
    assert run.answer["metadata"][1] == {"name": "tags", "value": "one two three"}
    assert run.answer["version"] == {"tag": "one", "digest": a.digest}

from __future__ import annotations

import pytest

from regwatch.errors import ConfigError
from regwatch.refs import (
    Reference,
    Repository,
    is_reference,
    parse_reference,
    parse_registry,
    parse_repository,
    parse_tag,
    plain_http_allowed,
)

HUB = "index.docker.io"
DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "path"),
    [
        ("alpine", HUB, "library/alpine"),
        ("library/alpine", HUB, "library/alpine"),
        ("concourse/registry-image-resource", HUB, "concourse/registry-image-resource"),
        ("docker.io/alpine", HUB, "library/alpine"),
        ("docker.io/library/alpine", HUB, "library/alpine"),
        ("index.docker.io/acme/app", HUB, "acme/app"),
        ("registry-1.docker.io/acme/app", HUB, "acme/app"),
        ("ghcr.io/acme/app", "ghcr.io", "acme/app"),
        ("ghcr.io/app", "ghcr.io", "app"),
        ("localhost/app", "localhost", "app"),
        ("localhost:5000/a/b/c", "localhost:5000", "a/b/c"),
        ("127.0.0.1:5000/app", "127.0.0.1:5000", "app"),
        ("[::1]:5000/app", "[::1]:5000", "app"),
        ("Registry.Example.COM/app", "registry.example.com", "app"),
        ("acme/my_app.v2__x-y", HUB, "acme/my_app.v2__x-y"),
        ("a/b", HUB, "a/b"),
    ],
)
def test_repository_names_follow_docker_rules(text: str, registry: str, path: str) -> None:
    repo = parse_repository(text)
    assert (repo.registry, repo.path) == (registry, path)
    assert repo.name == f"{registry}/{path}"


def test_docker_hub_is_canonical_index_but_wire_registry_1() -> None:
    repo = parse_repository("alpine")
    assert repo.is_docker_hub
    assert repo.wire_host == "registry-1.docker.io"
    assert str(repo) == "index.docker.io/library/alpine"
    assert parse_repository("ghcr.io/a/b").wire_host == "ghcr.io"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("Alpine", "lowercase"),
        ("acme/App", "lowercase"),
        ("acme//app", "path component ''"),
        ("acme/-app", "path component '-app'"),
        ("acme/app_", "path component 'app_'"),
        ("acme/a___b", "path component"),
        ("acme/app!", "path component"),
        ("host.io:port/app", "invalid registry host"),
        ("-bad.io/app", "invalid registry host"),
        ("ghcr.io/" + "a" * 256, "longer than 255"),
    ],
)
def test_bad_repository_names_fail_clearly(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="invalid") as info:
        parse_repository(text)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "tag", "digest", "identifier"),
    [
        ("alpine", None, None, "latest"),
        ("alpine:3.20", "3.20", None, "3.20"),
        ("localhost:5000/app", None, None, "latest"),
        ("localhost:5000/app:v1", "v1", None, "v1"),
        (f"app@{DIGEST}", None, DIGEST, DIGEST),
        (f"localhost:5000/app:v1@{DIGEST}", "v1", DIGEST, DIGEST),
        ("app:_weird.Tag-1", "_weird.Tag-1", None, "_weird.Tag-1"),
    ],
)
def test_references_carry_tag_or_digest(
    text: str, tag: str | None, digest: str | None, identifier: str
) -> None:
    ref = parse_reference(text)
    assert (ref.tag, ref.digest, ref.identifier) == (tag, digest, identifier)


def test_reference_prints_canonically() -> None:
    assert str(parse_reference("alpine:3")) == "index.docker.io/library/alpine:3"
    assert str(parse_reference(f"x.io/a@{DIGEST}")) == f"x.io/a@{DIGEST}"
    assert str(Reference(Repository("x.io", "a"))) == "x.io/a:latest"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("app:", "invalid tag"),
        ("app:-x", "invalid tag"),
        ("app:a+b", "invalid tag"),
        ("app:" + "a" * 129, "invalid tag"),
        ("app@sha256:abc", "invalid digest"),
        ("app@md5:" + "a" * 32, "invalid digest"),
        ("app@sha256:" + "A" * 64, "invalid digest"),
    ],
)
def test_bad_references_fail_clearly(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_reference(text)


def test_mirror_rewrite_keeps_the_hub_path() -> None:
    mirrored = parse_repository("busybox").on_registry("mirror.local:5000")
    assert mirrored == Repository("mirror.local:5000", "library/busybox")
    with pytest.raises(ConfigError):
        parse_repository("busybox").on_registry("bad host")


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("registry.localhost:80", True),
        ("127.0.0.1:5000", True),
        ("127.1.2.3", True),
        ("[::1]:5000", True),
        ("10.1.2.3:5000", True),
        ("172.16.0.1", True),
        ("172.31.255.255:443", True),
        ("172.32.0.1", False),
        ("192.168.1.10:5000", True),
        ("8.8.8.8", False),
        ("ghcr.io", False),
        ("index.docker.io", False),
        ("localhost.example.com", False),
    ],
)
def test_plain_http_only_for_local_and_private_hosts(host: str, allowed: bool) -> None:
    assert plain_http_allowed(host) is allowed


def test_registry_hosts_are_validated() -> None:
    assert parse_registry("docker.io") == HUB
    assert parse_registry("My.Registry:5000") == "my.registry:5000"
    with pytest.raises(ConfigError, match="invalid registry host"):
        parse_registry("a b")


@pytest.mark.parametrize(
    "tag",
    [
        "../../../victim/other/manifests/pwned",
        "feature?x",
        "a/b",
        "x#y",
        "a%2F..",
        "",
        ".",
        "..",
        "-x",
        "a" * 129,
        "new\nline",
        "tab\t",
    ],
)
def test_a_reference_cannot_hold_an_invalid_tag(tag: str) -> None:
    """Validated in the value itself: no code path can build a URL from such a tag."""
    with pytest.raises(ConfigError, match="invalid tag"):
        Reference(Repository("r.io", "app"), tag=tag)


@pytest.mark.parametrize(
    "digest",
    ["md5:abc", "sha256:../x", "sha256:" + "a" * 63, "sha256:" + "a" * 64 + "?x", "", "latest"],
)
def test_a_reference_cannot_hold_an_invalid_digest(digest: str) -> None:
    with pytest.raises(ConfigError, match="invalid digest"):
        Reference(Repository("r.io", "app"), digest=digest)


def test_valid_references_build() -> None:
    ref = Reference(Repository("r.io", "app"), tag="_A-1.b", digest=DIGEST)
    assert ref.identifier == DIGEST
    assert Reference(Repository("r.io", "app"), tag="a" * 128).identifier == "a" * 128


def test_an_absurdly_long_value_is_shown_short() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_tag("x" * 100_000)
    assert "(100000 characters)" in str(caught.value)
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("app", False),
        ("ghcr.io/acme/app", False),
        ("localhost:5000/app", False),
        ("app:latest", True),
        ("localhost:5000/app:1.0", True),
        (f"app@{DIGEST}", True),
        ("app@", True),
    ],
)
def test_is_reference(text: str, expected: bool) -> None:
    assert is_reference(text) is expected

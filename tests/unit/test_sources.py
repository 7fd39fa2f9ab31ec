"""A Concourse `source` as a `WatchSpec`: the one place a payload field gets its meaning."""

from __future__ import annotations

from typing import Any

import pytest

from regwatch.config import ContentTrust, GetParams, PutParams, Source, Version
from regwatch.errors import ConfigError
from regwatch.frontends.sources import cloud_login, cursor_of, fetch_spec, push_spec, watch_spec
from regwatch.refs import Repository
from regwatch.specs import Access, Mode, PlatformChoice, Selection, Signing, TagDigest

MIRROR = {"host": "mirror.test:5000", "username": "m", "password": "m-secret"}


def spec_of(source: dict[str, Any], **options: Any) -> Any:
    return watch_spec(Source.model_validate(source), unresolved="resolve", **options)


def test_every_field_lands_in_the_spec() -> None:
    spec = spec_of(
        {
            "repository": "ghcr.io/acme/app",
            "tag_regex": "^1",
            "created_at_sort": True,
            "variant": "alpine",
            "semver_constraint": ">= 1",
            "pre_releases": True,
            "pre_release_prefixes": ["rc"],
            "username": "u",
            "password": "p",
            "ca_certs": ["PEM"],
            "insecure": True,
            "platform": {"architecture": "arm64", "os": "linux"},
            "concurrency": 3,
            "label_regex": "l",
            "annotation_regex": "a",
        }
    )

    assert spec.repository == Repository("ghcr.io", "acme/app")
    assert spec.selection == Selection(
        tag_regex="^1",
        created_at_sort=True,
        variant="alpine",
        semver_constraint=">= 1",
        pre_releases=True,
        pre_release_prefixes=("rc",),
    )
    assert spec.selection.mode is Mode.REGEX
    assert spec.access == Access("u", "p", ("PEM",), insecure=True)
    assert "p" not in repr(spec.access).replace("PEM", "")
    assert spec.platform == PlatformChoice("arm64", "linux")
    assert (spec.concurrency, spec.label_regex, spec.annotation_regex) == (3, "l", "a")
    assert spec.shown == "ghcr.io/acme/app"


@pytest.mark.parametrize(
    ("selection", "mode"),
    [
        ({"tag": "1.0", "tag_regex": "x"}, Mode.TAG),
        ({"tag_regex": "x"}, Mode.REGEX),
        ({}, Mode.SEMVER),
    ],
)
def test_the_mode_follows_the_spec(selection: dict[str, str], mode: Mode) -> None:
    assert spec_of({"repository": "alpine", **selection}).selection.mode is mode


def test_the_mirror_applies_to_docker_hub_images_with_its_own_credentials() -> None:
    spec = spec_of(
        {"repository": "alpine", "username": "u", "password": "p", "registry_mirror": MIRROR}
    )

    assert spec.mirror is not None
    assert spec.mirror.repository == Repository("mirror.test:5000", "library/alpine")
    assert spec.mirror.access == Access("m", "m-secret")


def test_the_mirror_is_ignored_for_other_registries() -> None:
    spec = spec_of({"repository": "ghcr.io/acme/app", "registry_mirror": {"host": "::bad"}})
    assert spec.mirror is None


def test_a_bad_mirror_host_is_one_line_where_the_mirror_applies() -> None:
    source = {"repository": "alpine", "registry_mirror": {"host": "UPPER CASE"}}
    with pytest.raises(ConfigError, match=r"^failed to resolve mirror: parse mirror registry: "):
        spec_of(source)
    assert spec_of(source, mirrored=False).mirror is None, "out has no mirror (spec §2)"


def test_an_unparseable_repository_is_worded_by_the_step() -> None:
    source = Source.model_validate({"repository": "UPPER/case"})
    with pytest.raises(ConfigError, match=r"^could not resolve repository: "):
        watch_spec(source, unresolved="could not resolve repository")


def test_an_ecr_source_with_both_role_fields_is_refused_before_any_call() -> None:
    source = Source.model_validate(
        {
            "repository": "app",
            "aws_region": "eu-west-1",
            "aws_role_arn": "arn:aws:iam::1:role/a",
            "aws_role_arns": ["arn:aws:iam::1:role/b"],
        }
    )
    with pytest.raises(
        ConfigError, match=r"^cannot authenticate with ECR: `aws_role_arn` cannot be set at the"
    ):
        cloud_login(source)


def test_a_source_of_no_cloud_has_no_login() -> None:
    assert cloud_login(Source.model_validate({"repository": "alpine"})) is None


def test_params_and_versions_become_specs() -> None:
    version = Version(tag="1.0", digest="sha256:" + "a" * 64)
    params = GetParams.model_validate(
        {"format": "oci", "skip_download": True, "platform": {"os": "linux"}}
    )
    fetch = fetch_spec(params, version)
    assert fetch.version == TagDigest("1.0", "sha256:" + "a" * 64)
    assert (fetch.format, fetch.skip_download, fetch.platform) == (
        "oci",
        True,
        PlatformChoice(None, "linux"),
    )
    assert cursor_of(None) is None
    assert cursor_of(version) == fetch.version
    push = push_spec(
        PutParams.model_validate(
            {
                "image": "i.tar",
                "version": "1.2.3",
                "bump_aliases": True,
                "additional_tags": "t",
                "tag_prefix": "v",
            }
        )
    )
    assert (push.image, push.version, push.bump_aliases, push.additional_tags, push.tag_prefix) == (
        "i.tar",
        "1.2.3",
        True,
        "t",
        "v",
    )


def test_content_trust_lands_in_the_push_spec() -> None:
    trust = ContentTrust.model_validate(
        {
            "server": "https://notary.test",
            "repository_key_id": "abc",
            "repository_key": "PEM",
            "repository_passphrase": "pass",
            "tls_cert": "CERT",
            "tls_key": "KEY",
            "username": "u",
            "password": "p",
        }
    )

    signing = push_spec(PutParams(image="image.tar"), trust).signing

    assert signing == Signing(
        key="PEM",
        passphrase="pass",
        server="https://notary.test",
        key_id="abc",
        actions="push,pull",
        tls_cert="CERT",
        tls_key="KEY",
        username="u",
        password="p",
    )
    assert "PEM" not in repr(signing)
    assert "pass" not in repr(signing)


@pytest.mark.parametrize(
    ("scopes", "actions", "warned"),
    [("pull", "pull", False), ("catalog", "catalog", False), ("push", "pull", True)],
)
def test_content_trust_scopes_outside_the_list_become_pull(
    caplog: pytest.LogCaptureFixture, scopes: str, actions: str, warned: bool
) -> None:
    trust = ContentTrust.model_validate({"repository_key": "PEM", "scopes": scopes})

    signing = push_spec(PutParams(image="image.tar"), trust).signing

    assert signing is not None
    assert signing.actions == actions
    assert ("content_trust.scopes 'push' is not one of" in caplog.text) is warned

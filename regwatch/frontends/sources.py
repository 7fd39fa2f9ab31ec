"""A Concourse `source` (and `in`/`out` params) in the domain's words: the specs of `specs.py`.

The resource's steps and the daemon's `watches[]` (whose `source` holds exactly these fields)
both come through here, so a field means the same thing in both.
"""

from __future__ import annotations

from regwatch.config import GetParams, Platform, PutParams, Source, Version
from regwatch.errors import ConfigError
from regwatch.refs import Repository, parse_registry, parse_repository
from regwatch.specs import (
    Access,
    FetchSpec,
    Mirror,
    PlatformChoice,
    PushSpec,
    Selection,
    TagDigest,
    WatchSpec,
)


def watch_spec(source: Source, *, unresolved: str, mirrored: bool = True) -> WatchSpec:
    """The source as a watch; a repository that does not parse is `unresolved: reason`.

    Each step words that failure as its Go original does, hence `unresolved`. The mirror is
    resolved only where it applies (`mirrored`: check and in; Docker Hub images only).
    """
    refuse_unsupported(source)
    try:
        repository = parse_repository(source.repository)
    except ConfigError as exc:
        raise ConfigError(f"{unresolved}: {exc}") from None
    return WatchSpec(
        repository=repository,
        selection=selection_of(source),
        access=access_of(source),
        platform=platform_of(source.platform),
        mirror=mirror_of(repository, source) if mirrored else None,
        concurrency=source.concurrency,
        label_regex=source.label_regex,
        annotation_regex=source.annotation_regex,
        name=source.repository,
    )


def refuse_unsupported(source: Source) -> None:
    if source.aws_region:
        raise ConfigError("cannot authenticate with ECR: ECR support (aws_region) is not built yet")
    if source.azure_acr:
        raise ConfigError("cannot authenticate with ACR: ACR support (azure_acr) is not built yet")


def selection_of(source: Source) -> Selection:
    return Selection(
        tag=source.tag,
        tag_regex=source.tag_regex,
        created_at_sort=source.created_at_sort,
        variant=source.variant,
        semver_constraint=source.semver_constraint,
        pre_releases=source.pre_releases,
        pre_release_prefixes=source.pre_release_prefixes,
    )


def access_of(source: Source) -> Access:
    return Access(source.username, source.password, source.ca_certs, source.insecure)


def platform_of(platform: Platform | None) -> PlatformChoice | None:
    return PlatformChoice(platform.architecture, platform.os) if platform else None


def mirror_of(origin: Repository, source: Source) -> Mirror | None:
    """The mirror applies to Docker Hub images only, with its own credentials (spec §4)."""
    mirror = source.registry_mirror
    if mirror is None or not mirror.host or not origin.is_docker_hub:
        return None
    try:
        repository = origin.on_registry(parse_registry(mirror.host))
    except ConfigError as exc:
        raise ConfigError(f"failed to resolve mirror: parse mirror registry: {exc}") from None
    return Mirror(
        repository, Access(mirror.username, mirror.password, source.ca_certs, source.insecure)
    )


def cursor_of(version: Version | None) -> TagDigest | None:
    return TagDigest(version.tag, version.digest) if version is not None else None


def fetch_spec(params: GetParams, version: Version) -> FetchSpec:
    return FetchSpec(
        version=TagDigest(version.tag, version.digest),
        format=params.format,
        skip_download=params.skip_download,
        platform=platform_of(params.platform),
    )


def push_spec(params: PutParams) -> PushSpec:
    return PushSpec(
        image=params.image or "",
        version=params.version,
        bump_aliases=params.bump_aliases,
        additional_tags=params.additional_tags,
        tag_prefix=params.tag_prefix,
    )

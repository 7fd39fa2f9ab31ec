"""A Concourse `source` (and `in`/`out` params) in the domain's words: the specs of `specs.py`.

The resource's steps and the daemon's `watches[]` (whose `source` holds exactly these fields)
both come through here, so a field means the same thing in both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from regwatch.config import ContentTrust, GetParams, Platform, PutParams, Source, Version
from regwatch.durations import parse_duration
from regwatch.errors import ConfigError
from regwatch.refs import Repository, parse_registry, parse_repository
from regwatch.registry.credentials import CredentialSource
from regwatch.specs import (
    Access,
    FetchSpec,
    Mirror,
    PlatformChoice,
    PushSpec,
    Selection,
    Signing,
    TagDigest,
    WatchSpec,
)

log = logging.getLogger("regwatch")

CredentialLookup = Callable[[str], CredentialSource | None]


@dataclass(frozen=True)
class CloudLogin:
    """An ECR or ACR source after its login: the repository it really names and the
    credentials (which renew themselves) for its registry."""

    repository: str
    registry: str
    credentials: CredentialSource


def watch_spec(
    source: Source, *, unresolved: str, mirrored: bool = True, login: CloudLogin | None = None
) -> WatchSpec:
    """The source as a watch; a repository that does not parse is `unresolved: reason`.

    Each step words that failure as its Go original does, hence `unresolved`. The mirror is
    resolved only where it applies (`mirrored`: check and in; Docker Hub images only); an ECR
    or ACR source (`login`) never uses it, and its own pair is replaced by the login's.
    """
    name = login.repository if login is not None else source.repository
    try:
        repository = parse_repository(name)
    except ConfigError as exc:
        raise ConfigError(f"{unresolved}: {exc}") from None
    return WatchSpec(
        repository=repository,
        selection=selection_of(source),
        access=access_of(source, cloud=login is not None),
        platform=platform_of(source.platform),
        mirror=mirror_of(repository, source) if mirrored and login is None else None,
        concurrency=source.concurrency,
        label_regex=source.label_regex,
        annotation_regex=source.annotation_regex,
        name=name,
        max_age=parse_duration(source.max_age) if source.max_age is not None else None,
    )


def cloud_login(source: Source, *, eager: bool = True) -> CloudLogin | None:
    """Log an ECR (`aws_region`) or ACR (`azure_acr`) source in; None for any other source.

    ECR comes first, as in the Go resource: its rewritten repository is what ACR would see.
    A step logs in at once (`eager`), so a refused login fails it before anything else; the
    daemon logs in at a watch's first poll, except for an ECR source without `aws_account_id`,
    whose registry only the first token names.
    """
    login = _ecr_login(source, eager=eager) if source.aws_region else None
    if source.azure_acr:
        from regwatch.registry.acr import AcrLogin, AcrSettings  # noqa: PLC0415

        repository = login.repository if login is not None else source.repository
        acr = AcrLogin(
            AcrSettings(
                repository=repository,
                client_id=source.azure_client_id or None,
                tenant_id=source.azure_tenant_id or None,
                environment=source.azure_environment or None,
                ca_certs=source.ca_certs,
                insecure=source.insecure,
            )
        )
        if eager:
            acr.current()
        login = CloudLogin(repository, acr.registry, acr)
    return login


def _ecr_login(source: Source, *, eager: bool) -> CloudLogin:
    from regwatch.registry.ecr import EcrLogin, EcrSettings  # noqa: PLC0415

    if source.aws_role_arn and source.aws_role_arns:
        raise ConfigError(
            "cannot authenticate with ECR: "
            "`aws_role_arn` cannot be set at the same time as `aws_role_arns`"
        )
    if source.aws_ecr_registry_id:
        log.warning("aws_ecr_registry_id is deprecated and no longer needed: it is ignored")
    ecr = EcrLogin(
        EcrSettings(
            region=source.aws_region or "",
            access_key_id=source.aws_access_key_id or None,
            secret_access_key=source.aws_secret_access_key or None,
            session_token=source.aws_session_token or None,
            role_arns=(source.aws_role_arn,) if source.aws_role_arn else source.aws_role_arns,
            account_id=source.aws_account_id or None,
        )
    )
    if eager:
        ecr.current()
    registry = ecr.registry()
    return CloudLogin(f"{registry}/{source.repository}", registry, ecr)


def login_lookup(
    logins: Iterable[CloudLogin], fallback: CredentialLookup | None = None
) -> CredentialLookup | None:
    """Registry credentials: a cloud login's for its registry, else the fallback's (the Docker
    config). Watches of one registry share the first login that names it."""
    by_registry: dict[str, CredentialSource] = {}
    for login in logins:
        by_registry.setdefault(login.registry, login.credentials)
    if not by_registry:
        return fallback

    def lookup(registry: str) -> CredentialSource | None:
        found = by_registry.get(registry)
        if found is None and fallback is not None:
            return fallback(registry)
        return found

    return lookup


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


def access_of(source: Source, *, cloud: bool = False) -> Access:
    """The source's pair, unless a cloud login's credentials replace it."""
    if cloud:
        return Access(None, None, source.ca_certs, source.insecure)
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


def push_spec(params: PutParams, trust: ContentTrust | None = None) -> PushSpec:
    return PushSpec(
        image=params.image or "",
        version=params.version,
        bump_aliases=params.bump_aliases,
        additional_tags=params.additional_tags,
        tag_prefix=params.tag_prefix,
        signing=signing_of(trust) if trust is not None else None,
    )


TRUST_ACTIONS: Final = ("pull", "push,pull", "catalog")
"""The token scopes' actions `content_trust.scopes` may name (the Go resource's list)."""


def signing_of(trust: ContentTrust) -> Signing:
    """`content_trust` as a `Signing`; scopes outside `TRUST_ACTIONS` fall back to `pull` with
    a warning, as the Go resource does (a server then refuses the publish, saying why)."""
    actions = trust.scopes or "push,pull"
    if actions not in TRUST_ACTIONS:
        log.warning(
            "content_trust.scopes %r is not one of %s; using pull",
            actions,
            ", ".join(TRUST_ACTIONS),
        )
        actions = "pull"
    return Signing(
        key=trust.repository_key or "",
        passphrase=trust.repository_passphrase or "",
        server=trust.server,
        key_id=trust.repository_key_id,
        actions=actions,
        tls_cert=trust.tls_cert,
        tls_key=trust.tls_key,
        username=trust.username,
        password=trust.password,
    )

"""What the use cases are asked to do and answer, in the domain's words, not a front end's.

A Concourse `source` and a daemon's `watches[]` entry both become a `WatchSpec`; `in`'s and
`out`'s params become a `FetchSpec` and a `PushSpec`. Nothing below the front ends sees a
payload type, so the daemon and the resource cannot drift apart in what a field means.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import timedelta

from regwatch.refs import Repository

DEFAULT_CONCURRENCY = 8


@dataclass(frozen=True)
class Access:
    """How to reach a registry: who we are and which roots we trust."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_certs: tuple[str, ...] = ()
    insecure: bool = False


class Mode(enum.Enum):
    TAG = "tag"
    REGEX = "tag_regex"
    SEMVER = "semver"


@dataclass(frozen=True)
class Selection:
    """Which tags count: one tag, the tags a pattern finds, or versions (spec §3.1)."""

    tag: str | None = None
    tag_regex: str | None = None
    created_at_sort: bool = False
    variant: str | None = None
    semver_constraint: str | None = None
    pre_releases: bool = False
    pre_release_prefixes: tuple[str, ...] = ()

    @property
    def mode(self) -> Mode:
        """`tag` wins over `tag_regex`, which wins over semver mode (spec §3.1, quirk Q18)."""
        if self.tag:
            return Mode.TAG
        if self.tag_regex:
            return Mode.REGEX
        return Mode.SEMVER

    @property
    def bare_tag(self) -> str:
        """The tag that stands for "newest" without being a version: the variant, or `latest`."""
        return self.variant or "latest"


@dataclass(frozen=True)
class PlatformChoice:
    """The platform wanted from an index; unset parts mean the machine's own (spec §3.5)."""

    architecture: str | None = None
    os: str | None = None


@dataclass(frozen=True)
class Mirror:
    """Where Docker Hub images are read first, with the mirror's own credentials (spec §4)."""

    repository: Repository
    access: Access


@dataclass(frozen=True)
class WatchSpec:
    """One repository to watch, and how."""

    repository: Repository
    selection: Selection = Selection()
    access: Access = Access()
    platform: PlatformChoice | None = None
    mirror: Mirror | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    """How many digests a poll resolves at once."""
    label_regex: str | None = None
    annotation_regex: str | None = None
    name: str = ""
    """How the user wrote the repository: what `in` and `out` answer as `repository`."""
    rescan: timedelta | None = None
    """How often known versions are re-verified; None resolves every candidate on each poll, as
    the Concourse check does. The daemon sets it (default 24h)."""
    max_age: timedelta | None = None
    """A Concourse check with a store: answer from the log, with no request, when the
    repository's newest successful poll is younger than this and covered the check (issue 16);
    None always polls."""

    @property
    def shown(self) -> str:
        return self.name or self.repository.name


@dataclass(frozen=True)
class TagDigest:
    """A tag and the digest it pointed to: a check's cursor, and each version it answers."""

    tag: str
    digest: str


@dataclass(frozen=True)
class FetchSpec:
    """What `in` writes: a version's image in one format, or only its version files."""

    version: TagDigest
    format: str = "rootfs"
    skip_download: bool = False
    platform: PlatformChoice | None = None


@dataclass(frozen=True)
class Signing:
    """How `out` signs what it pushed with Notary (Docker Content Trust, spec §6.7).

    `server` is None for the default (Docker Hub's notary, else the registry's host); `actions`
    are the token scope's (`push,pull`). `username`/`password` are None to use the registry's.
    """

    key: str = field(repr=False)
    """The repository key's PEM, as notary exports it (usually encrypted)."""
    passphrase: str = field(repr=False)
    server: str | None = None
    key_id: str | None = None
    actions: str = "push,pull"
    tls_cert: str | None = None
    tls_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PushSpec:
    """What `out` pushes: the image at `image` below the sources, under the computed tags."""

    image: str
    version: str | None = None
    bump_aliases: bool = False
    additional_tags: str | None = None
    tag_prefix: str | None = None
    signing: Signing | None = None
    """Sign each tag with Notary after the push; None pushes unsigned."""


@dataclass(frozen=True)
class Metadata:
    """One `name`/`value` pair of what `in` and `out` report about the image."""

    name: str
    value: str


@dataclass(frozen=True)
class Pushed:
    version: TagDigest
    metadata: list[Metadata]

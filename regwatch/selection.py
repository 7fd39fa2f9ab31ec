"""Which tags a check considers: its mode, and in semver mode which tags qualify as versions.

Shared by `observe` (which tags to spend requests on) and `projections.versions` (what to
answer), so the two can never disagree about a tag.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from regwatch.config import Source, Version
from regwatch.patterns import Pattern, compile_pattern
from regwatch.versioning import (
    Version as SemVersion,
)
from regwatch.versioning import (
    parse_constraint,
    parse_version,
    prerelease_accepted,
)


class Mode(enum.Enum):
    TAG = "tag"
    REGEX = "tag_regex"
    SEMVER = "semver"


def mode_of(source: Source) -> Mode:
    """`tag` wins over `tag_regex`, which wins over semver mode (spec §3.1, quirk Q18)."""
    if source.tag:
        return Mode.TAG
    if source.tag_regex:
        return Mode.REGEX
    return Mode.SEMVER


@dataclass(frozen=True)
class Candidate:
    """A tag that counts as a version in semver mode."""

    tag: str
    version: SemVersion
    version_string: str
    """The tag without its `-<variant>` suffix: what alias dedup counts dots in."""


def bare_tag(source: Source) -> str:
    """The tag that stands for "newest" without being a version: the variant, or `latest`."""
    return source.variant or "latest"


def semver_candidates(tags: Sequence[str], source: Source) -> list[Candidate]:
    """Tags that parse as versions and pass variant, constraint and prerelease rules (§3.3.2).

    Raises `ConfigError` for a bad `semver_constraint`, which the spec checks only once the
    tags have been listed.
    """
    constraint = parse_constraint(source.semver_constraint) if source.semver_constraint else None
    suffix = f"-{source.variant}" if source.variant else ""
    bare = bare_tag(source)
    found = []
    for tag in tags:
        if tag == bare:
            continue
        if suffix and not tag.endswith(suffix):
            continue
        version_string = tag.removesuffix(suffix) if suffix else tag
        version = parse_version(version_string)
        if version is None:
            continue
        if constraint is not None and not constraint.allows(version):
            continue
        if not prerelease_accepted(
            version.prerelease,
            pre_releases=source.pre_releases,
            prefixes=source.pre_release_prefixes,
        ):
            continue
        found.append(Candidate(tag, version, version_string))
    return found


def cursor_first(tags: Sequence[str], cursor: Version | None) -> list[str]:
    """The cursor's tag moved to the front, the others in listing order (§3.3.2)."""
    if cursor is None or cursor.tag not in tags:
        return list(tags)
    return [cursor.tag, *(t for t in tags if t != cursor.tag)]


def regex_matches(tags: Sequence[str], source: Source) -> list[str]:
    """Tags the (unanchored) `tag_regex` finds anywhere in, in listing order (§3.4)."""
    pattern = compile_regex(source.tag_regex or "")
    return [tag for tag in tags if pattern.found_in(tag)]


def compile_regex(text: str) -> Pattern:
    """`tag_regex` as Go's regexp reads it; a pattern Go refuses is a `ConfigError`."""
    return compile_pattern(text, "tag_regex")

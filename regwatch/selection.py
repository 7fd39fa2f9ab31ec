"""Which tags a check considers: its mode, and in semver mode which tags qualify as versions.

Shared by `observe` (which tags to spend requests on) and `projections.versions` (what to
answer), so the two can never disagree about a tag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from regwatch.patterns import Pattern, compile_pattern
from regwatch.specs import Selection, TagDigest
from regwatch.versioning import (
    Version as SemVersion,
)
from regwatch.versioning import (
    parse_constraint,
    parse_version,
    prerelease_accepted,
)


@dataclass(frozen=True)
class Candidate:
    """A tag that counts as a version in semver mode."""

    tag: str
    version: SemVersion
    version_string: str
    """The tag without its `-<variant>` suffix: what alias dedup counts dots in."""


def semver_candidates(tags: Sequence[str], selection: Selection) -> list[Candidate]:
    """Tags that parse as versions and pass variant, constraint and prerelease rules (§3.3.2).

    Raises `ConfigError` for a bad `semver_constraint`, which the spec checks only once the
    tags have been listed.
    """
    constraint = (
        parse_constraint(selection.semver_constraint) if selection.semver_constraint else None
    )
    suffix = f"-{selection.variant}" if selection.variant else ""
    bare = selection.bare_tag
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
            pre_releases=selection.pre_releases,
            prefixes=selection.pre_release_prefixes,
        ):
            continue
        found.append(Candidate(tag, version, version_string))
    return found


def cursor_first(tags: Sequence[str], cursor: TagDigest | None) -> list[str]:
    """The cursor's tag moved to the front, the others in listing order (§3.3.2)."""
    if cursor is None or cursor.tag not in tags:
        return list(tags)
    return [cursor.tag, *(t for t in tags if t != cursor.tag)]


def regex_matches(tags: Sequence[str], selection: Selection) -> list[str]:
    """Tags the (unanchored) `tag_regex` finds anywhere in, in listing order (§3.4)."""
    pattern = compile_regex(selection.tag_regex or "")
    return [tag for tag in tags if pattern.found_in(tag)]


def compile_regex(text: str) -> Pattern:
    """`tag_regex` as Go's regexp reads it; a pattern Go refuses is a `ConfigError`."""
    return compile_pattern(text, "tag_regex")

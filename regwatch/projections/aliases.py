"""Alias bumping for `out`: which of latest/variant, MAJOR and MAJOR.MINOR move, and why.

A pure fold over what the log says the repository holds (the remote tag listing recorded as an
observation just before the push), spec §6.6.1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from regwatch.versioning import Version, parse_version


@dataclass(frozen=True)
class AliasDecision:
    aliases: tuple[str, ...]
    """Tags to push besides the version tag, in order: latest/variant, MAJOR, MAJOR.MINOR."""
    held_back: tuple[str, ...] = ()
    """Why an alias does not move, one phrase per alias ("1.2 stays: 1.2.4 is newer")."""


def decide_aliases(tags: Iterable[str], version: Version, variant: str | None) -> AliasDecision:
    """Which aliases move to `version`; nothing moves for a prerelease.

    Only final releases among the existing tags (with `-<variant>` when one is set) count; a
    newer version anywhere holds `latest` back, a newer minor of the same major holds MAJOR
    back, and a newer patch of the same minor holds both MAJOR and MAJOR.MINOR back.
    """
    if version.prerelease:
        return AliasDecision(())
    suffix = f"-{variant}" if variant else ""
    blockers: dict[str, Version] = {}
    for tag in tags:
        if suffix and not tag.endswith(suffix):
            continue
        existing = parse_version(tag.removesuffix(suffix) if suffix else tag)
        if existing is None or existing.prerelease:
            continue
        if existing > version:
            blockers.setdefault("latest", existing)
        if existing.major == version.major and existing.minor > version.minor:
            blockers.setdefault("major", existing)
        if (existing.major, existing.minor) == (version.major, version.minor) and (
            existing.patch > version.patch
        ):
            blockers.setdefault("minor", existing)
            blockers.setdefault("major", existing)
    names = {
        "latest": variant or "latest",
        "major": f"{version.major}{suffix}",
        "minor": f"{version.major}.{version.minor}{suffix}",
    }
    moved = tuple(names[alias] for alias in ("latest", "major", "minor") if alias not in blockers)
    held = tuple(
        f"{names[alias]} stays: {blockers[alias].original} is newer"
        for alias in ("latest", "major", "minor")
        if alias in blockers
    )
    return AliasDecision(moved, held)


def version_tag(version: Version, variant: str | None) -> str:
    """The tag a version is pushed as: normalised (`v1.2` → `1.2.0`), plus `-<variant>`."""
    text = f"{version.major}.{version.minor}.{version.patch}"
    if version.prerelease:
        text += f"-{version.prerelease}"
    if version.metadata:
        text += f"+{version.metadata}"
    return f"{text}-{variant}" if variant else text

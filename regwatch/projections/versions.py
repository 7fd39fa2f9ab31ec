"""Check semantics: the version list Concourse gets, folded from the log for one observation.

Digests and creation times come from the repository's state (the fold of its events); the
observation only says which tags this poll looked at, so a tag the poll skipped (older than
the cursor) is never answered from stale knowledge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from regwatch.decide import RepoState
from regwatch.observe import Observation
from regwatch.selection import (
    Candidate,
    cursor_first,
    regex_matches,
    semver_candidates,
)
from regwatch.specs import Mode, Selection, TagDigest
from regwatch.versioning import specificity

_NEVER = datetime.min.replace(tzinfo=UTC)


def check_versions(
    state: RepoState, observation: Observation, selection: Selection, cursor: TagDigest | None
) -> list[TagDigest]:
    """Oldest first, newest last, as Concourse expects (spec §3.2–3.4)."""
    mode = selection.mode
    if mode is Mode.TAG:
        return _tag_mode(state, observation, selection.tag or "", cursor)
    seen = _seen(state, observation)
    listed = observation.listed or ()
    if mode is Mode.REGEX:
        return _regex_mode(state, seen, listed, selection)
    return _semver_mode(seen, listed, selection, cursor)


def _seen(state: RepoState, observation: Observation) -> dict[str, str]:
    """Tag → digest for the tags this observation found, with the digest the log holds."""
    return {t: state.tags[t] for t in observation.resolved if t in state.tags}


def _tag_mode(
    state: RepoState, observation: Observation, tag: str, cursor: TagDigest | None
) -> list[TagDigest]:
    current = state.tags.get(tag) if tag in observation.resolved else None
    if current is None:
        return []
    if cursor and cursor.digest and cursor.digest in observation.digests_present:
        return [TagDigest(tag=tag, digest=cursor.digest), TagDigest(tag=tag, digest=current)]
    return [TagDigest(tag=tag, digest=current)]


def _regex_mode(
    state: RepoState, seen: dict[str, str], listed: Sequence[str], selection: Selection
) -> list[TagDigest]:
    found = [(tag, seen[tag]) for tag in regex_matches(listed, selection) if tag in seen]
    if selection.created_at_sort:

        def created(item: tuple[str, str]) -> datetime:
            image = state.images.get(item[1])
            return image.created if image and image.created else _NEVER

        found.sort(key=created)
    return [TagDigest(tag=tag, digest=digest) for tag, digest in found]


@dataclass
class _Entry:
    candidate: Candidate
    digest: str


def _semver_mode(
    seen: dict[str, str], listed: Sequence[str], selection: Selection, cursor: TagDigest | None
) -> list[TagDigest]:
    candidates = semver_candidates(listed, selection)
    by_tag = {c.tag: c for c in candidates}
    floor = None
    if cursor and cursor.tag in by_tag and seen.get(cursor.tag) == cursor.digest:
        floor = by_tag[cursor.tag]
    by_digest: dict[str, _Entry] = {}
    for tag in cursor_first([c.tag for c in candidates], cursor):
        candidate = by_tag[tag]
        if tag not in seen or (
            floor and tag != floor.tag and not candidate.version > floor.version
        ):
            continue
        digest = seen[tag]
        existing = by_digest.get(digest)
        if existing is None or _more_specific(candidate, existing.candidate):
            by_digest[digest] = _Entry(candidate, digest)
    entries = sorted(by_digest.values(), key=lambda e: e.candidate.version)
    answer = [TagDigest(tag=e.candidate.tag, digest=e.digest) for e in entries]
    bare = selection.bare_tag
    if bare in seen and not selection.semver_constraint:
        older = {seen[c.tag] for c in candidates if c.tag in seen}
        if seen[bare] not in older:
            answer.append(TagDigest(tag=bare, digest=seen[bare]))
    return answer


def _more_specific(new: Candidate, old: Candidate) -> bool:
    """Alias dedup (§3.3.6): a final release beats a prerelease, then more dots win."""
    if new.version.is_prerelease != old.version.is_prerelease:
        return old.version.is_prerelease
    return specificity(new.version_string) > specificity(old.version_string)

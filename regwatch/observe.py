"""What we saw: an `Observation` of one repository, and `observe()`, which spends the requests.

An observation records its scope (the full listing when one was made, the tags it looked up
and the ones it found missing), so `decide` never infers a disappearance from a tag this poll
did not ask about. Digests are resolved concurrently; results are the same as resolving one
by one in listing order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol, TypeVar

from regwatch.rescan import Rescan
from regwatch.selection import (
    compile_regex,
    cursor_first,
    regex_matches,
    semver_candidates,
)
from regwatch.specs import Mode, Selection, TagDigest

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True)
class ImageFacts:
    """What inspecting a manifest (and its config) told us."""

    digest: str
    media_type: str
    size: int
    created: datetime | None
    platforms: tuple[tuple[str, str, str | None, str], ...] = ()
    """(os, architecture, variant, child digest) of each image in an index."""
    blobs: tuple[str, ...] = ()


class RegistryReader(Protocol):
    """The registry as `observe` needs it, for one repository."""

    def list_tags(self) -> list[str]: ...

    def digest(self, reference: str) -> str | None:
        """The digest a tag or digest names now, or None when there is no such manifest."""
        ...

    def inspect(self, digest: str) -> ImageFacts: ...

    def manifest_facts(self, digest: str, *, whole: bool = False) -> ImageFacts | None:
        """The manifest (one GET: an index's platforms), and with `whole` what `inspect` reads
        too; None when it is gone or unreadable."""
        ...


@dataclass(frozen=True)
class Observation:
    stream: str
    taken_at: datetime
    listed: tuple[str, ...] | None = None
    resolved: Mapping[str, str] = field(default_factory=dict)
    missing: frozenset[str] = frozenset()
    digests_present: frozenset[str] = frozenset()
    digests_absent: frozenset[str] = frozenset()
    """Digests looked up (a tag-mode cursor) that named no manifest: what the run records, so
    a check answered from the log knows the cursor is gone without asking."""
    inspected: tuple[ImageFacts, ...] = ()
    platform: str | None = None
    """The watch's explicit platform (`os/arch[/variant]`), which its tag events carry."""


def observe(
    reader: RegistryReader,
    selection: Selection,
    cursor: TagDigest | None,
    *,
    stream: str,
    now: Callable[[], datetime],
    concurrency: int,
    known_images: frozenset[str] = frozenset(),
    known_tags: Mapping[str, str] | None = None,
    rescan: timedelta | None = None,
    last_poll: datetime | None = None,
    inspection_waits: Callable[[], bool] = lambda: False,
    inspect_moves: bool = False,
    platform: str | None = None,
) -> Observation:
    """Look at the registry as the check mode needs; `known_images` are not inspected again.

    With `rescan` (a daemon's poll), the tags in `known_tags` (the state's tag → digest) that
    are full versions are resolved only when their turn in the rescan cycle fell after
    `last_poll` (the watch's previous successful poll): a known tag listed but not resolved is
    no news. In such a poll, `inspection_waits` says (once the tags are resolved) that the
    registry's rate-limit budget is low: config blobs wait for a later poll rather than spend
    the last of it.

    With `inspect_moves` (a poll that records), the old and the new digest of each tag that
    moved are inspected when they are not known images yet, so the history can tell which
    platforms a move added or removed and whether `platform`'s own image changed: a manifest
    GET each, the config too only where the mode reads it (`created_at_sort`). Appeared tags
    are not inspected: a first poll of 500 tags must not cost 500 GETs.
    """
    observation = _observe(
        reader,
        selection,
        cursor,
        stream=stream,
        taken_at=now(),
        concurrency=concurrency,
        known_images=known_images,
        known_tags=known_tags or {},
        rescan=rescan,
        last_poll=last_poll,
        inspection_waits=inspection_waits,
    )
    if inspect_moves and not (rescan is not None and inspection_waits()):
        full = selection.mode is Mode.REGEX and selection.created_at_sort
        pool = _Resolver(reader, concurrency)
        inspect = partial(reader.manifest_facts, whole=full)
        observation = _with_moves(observation, pool, inspect, known_tags or {}, known_images)
    return replace(observation, platform=platform)


def _with_moves(
    observation: Observation,
    pool: _Resolver,
    inspect: Callable[[str], ImageFacts | None],
    known_tags: Mapping[str, str],
    known_images: frozenset[str],
) -> Observation:
    """`observation` with the old and new manifests of its moved tags inspected (once each)."""
    moves = [
        (known_tags[tag], digest)
        for tag, digest in observation.resolved.items()
        if tag in known_tags and known_tags[tag] != digest
    ]
    skip = known_images | {facts.digest for facts in observation.inspected}
    wanted = [d for d in dict.fromkeys(d for move in moves for d in move) if d not in skip]
    if not wanted:
        return observation
    found = pool.map(inspect, wanted)
    inspected = (*observation.inspected, *(facts for facts in found if facts is not None))
    return replace(observation, inspected=inspected)


def _observe(
    reader: RegistryReader,
    selection: Selection,
    cursor: TagDigest | None,
    *,
    stream: str,
    taken_at: datetime,
    concurrency: int,
    known_images: frozenset[str],
    known_tags: Mapping[str, str],
    rescan: timedelta | None,
    last_poll: datetime | None,
    inspection_waits: Callable[[], bool],
) -> Observation:
    mode = selection.mode
    pool = _Resolver(reader, concurrency)
    if mode is Mode.TAG:
        return _observe_tag(pool, reader, selection.tag or "", cursor, stream, taken_at)
    if mode is Mode.REGEX:
        compile_regex(selection.tag_regex or "")  # a bad pattern costs no request (spec §3.4)
    listed = tuple(reader.list_tags())
    known = known_tags
    share = Rescan(rescan, taken_at, last_poll) if rescan is not None else None
    if mode is Mode.REGEX:
        matches = regex_matches(listed, selection)
        pool.resolve(share.wanted(matches, known) if share else matches)
        inspected: tuple[ImageFacts, ...] = ()
        if selection.created_at_sort and not (share and inspection_waits()):
            # A known tag not resolved now keeps its digest; one inspection that waited for
            # the rate limit is made up here.
            kept = (known[t] for t in matches if t in known and t not in pool.found)
            current = [*pool.found.values(), *(kept if share else ())]
            digests = dict.fromkeys(d for d in current if d not in known_images)
            inspected = tuple(pool.map(reader.inspect, list(digests)))
        return pool.observation(stream, taken_at, listed, inspected=inspected)
    if share:
        candidates = [c.tag for c in semver_candidates(listed, selection)]
        bare = [selection.bare_tag] if selection.bare_tag in listed else []
        pool.resolve(share.wanted([*candidates, *bare], known))
    else:
        _resolve_semver(pool, listed, selection, cursor)
    return pool.observation(stream, taken_at, listed)


def _observe_tag(
    pool: _Resolver,
    reader: RegistryReader,
    tag: str,
    cursor: TagDigest | None,
    stream: str,
    taken_at: datetime,
) -> Observation:
    """One HEAD for the tag; one more for the cursor's digest when the tag has moved (§3.2)."""
    pool.resolve([tag])
    current = pool.found.get(tag)
    present: frozenset[str] = frozenset()
    absent: frozenset[str] = frozenset()
    moved = current and cursor and cursor.digest and cursor.digest != current
    if moved and cursor:
        if reader.digest(cursor.digest) is not None:
            present = frozenset({cursor.digest})
        else:
            absent = frozenset({cursor.digest})
    return pool.observation(stream, taken_at, None, digests_present=present, digests_absent=absent)


def _resolve_semver(
    pool: _Resolver, listed: Sequence[str], selection: Selection, cursor: TagDigest | None
) -> None:
    """Resolve what semver mode needs: the cursor's tag first, then only newer versions.

    Quirk Q2: when the bare tag's digest is not among the versions resolved, older versions
    are resolved newest first until one carries it, so the bare tag is not mistaken for a new
    version.
    """
    bare = selection.bare_tag
    candidates = semver_candidates(listed, selection)
    by_tag = {c.tag: c for c in candidates}
    ordered = [by_tag[t] for t in cursor_first([c.tag for c in candidates], cursor)]
    floor = None
    if cursor and cursor.tag in by_tag:
        pool.resolve([cursor.tag])
        if pool.found.get(cursor.tag) == cursor.digest:
            floor = by_tag[cursor.tag]
    newer = [c for c in ordered if floor is None or c.version > floor.version]
    pool.resolve([*(c.tag for c in newer), *([bare] if bare in listed else [])])
    if floor is None or bare not in pool.found:
        return
    kept = {pool.found[c.tag] for c in (floor, *newer) if c.tag in pool.found}
    if pool.found[bare] in kept:
        return
    older = sorted(
        (c for c in candidates if c.tag not in pool.found and not c.version > floor.version),
        key=lambda c: c.version,
        reverse=True,
    )
    bare_digest = pool.found[bare]
    for start in range(0, len(older), pool.width):
        batch = older[start : start + pool.width]
        pool.resolve([c.tag for c in batch])
        if any(pool.found.get(c.tag) == bare_digest for c in batch):
            return


class _Resolver:
    """Resolves tags with at most `width` requests in flight, remembering every answer."""

    def __init__(self, reader: RegistryReader, width: int) -> None:
        self._reader = reader
        self.width = width
        self.found: dict[str, str] = {}
        self.missing: set[str] = set()

    def resolve(self, tags: Sequence[str]) -> None:
        todo = [t for t in dict.fromkeys(tags) if t not in self.found and t not in self.missing]
        for tag, digest in zip(todo, self.map(self._reader.digest, todo), strict=True):
            if digest is None:
                self.missing.add(tag)
            else:
                self.found[tag] = digest

    def map(self, work: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
        if self.width == 1 or len(items) <= 1:
            return [work(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.width, len(items))) as pool:
            futures = [pool.submit(work, item) for item in items]
            try:
                return [future.result() for future in futures]
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    def observation(
        self,
        stream: str,
        taken_at: datetime,
        listed: tuple[str, ...] | None,
        *,
        inspected: tuple[ImageFacts, ...] = (),
        digests_present: frozenset[str] = frozenset(),
        digests_absent: frozenset[str] = frozenset(),
    ) -> Observation:
        listing_order = {t: self.found[t] for t in listed or () if t in self.found}
        resolved = {**listing_order, **self.found}
        return Observation(
            stream=stream,
            taken_at=taken_at,
            listed=listed,
            resolved=resolved,
            missing=frozenset(self.missing),
            digests_present=digests_present,
            digests_absent=digests_absent,
            inspected=inspected,
        )

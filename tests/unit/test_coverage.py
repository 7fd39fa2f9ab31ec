"""A check answered from a recorded poll (issue 16): the same answer as polling, or no answer.

Each case records one poll of an in-memory registry (a check's, or a daemon's economical one),
then asks a check: answered from the log it must equal the answer of a live poll of the same
registry, and where the recorded poll did not ask what the check asks, it must not answer.
A replay is given no registry at all, so it cannot send a request; that a covered check opens
no connection is measured end to end in `tests/e2e/test_check_from_log.py`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from regwatch.config import Source
from regwatch.decide import RepoState, decide, fold
from regwatch.events import LISTING_KEPT, PollSucceeded
from regwatch.frontends.sources import selection_of
from regwatch.observe import ImageFacts, observe
from regwatch.projections.coverage import Coverage, NotCovered, covering, replayed
from regwatch.projections.versions import check_versions
from regwatch.specs import Selection, TagDigest

A, B, C, D, E, F = (f"sha256:{c * 64}" for c in "abcdef")
NOW = datetime(2026, 3, 1, tzinfo=UTC)
STREAM = "example.com/app"

TAGS = {"1.0.0": A, "1.0.1": B, "1.1.0": C, "1.1": C, "2.0.0-rc.1": D, "latest": C, "dev": E}
CREATED = {A: NOW - timedelta(days=9), B: NOW - timedelta(days=3), C: NOW - timedelta(days=5)}


class Registry:
    """Tag → digest; `listed_only` tags are listed but their manifests are gone."""

    def __init__(self, tags: Mapping[str, str], listed_only: tuple[str, ...] = ()) -> None:
        self.tags = dict(tags)
        self.listed_only = listed_only
        self._lock = threading.Lock()
        self.requests = 0

    def _sent(self) -> None:
        with self._lock:
            self.requests += 1

    def list_tags(self) -> list[str]:
        self._sent()
        return [*self.tags, *self.listed_only]

    def digest(self, reference: str) -> str | None:
        self._sent()
        if reference.startswith("sha256:"):
            return reference if reference in self.tags.values() else None
        return self.tags.get(reference)

    def inspect(self, digest: str) -> ImageFacts:
        self._sent()
        return ImageFacts(
            digest, "application/vnd.oci.image.manifest.v1+json", 1, CREATED.get(digest)
        )

    def manifest_facts(self, digest: str, *, whole: bool = False) -> ImageFacts | None:
        return self.inspect(digest)


def selection(**source: Any) -> Selection:
    return selection_of(Source.model_validate({"repository": STREAM, **source}))


def cursor_of(pair: tuple[str, str] | None) -> TagDigest | None:
    return TagDigest(*pair) if pair else None


def poll(
    registry: Registry,
    chosen: Selection,
    cursor: TagDigest | None,
    state: RepoState,
    *,
    daemon: bool = False,
) -> tuple[RepoState, Coverage, list[TagDigest]]:
    """One recording poll, as `service.polling` makes it: the state after, what its run says
    it covered, and the check answer it gives."""
    observation = observe(
        registry,
        chosen,
        cursor,
        stream=STREAM,
        now=lambda: NOW,
        concurrency=3,
        known_images=frozenset(state.images),
        known_tags=state.tags,
        rescan=timedelta(days=3650) if daemon else None,
        last_poll=NOW - timedelta(seconds=1) if daemon else None,
        inspect_moves=True,
    )
    after = fold(decide(state, observation), state)
    run = covering(PollSucceeded(requests=0, duration_seconds=0), observation)
    answer = check_versions(after, observation, chosen, cursor)
    return after, Coverage.of(run, NOW), answer


def from_log(
    state: RepoState, coverage: Coverage, chosen: Selection, cursor: TagDigest | None
) -> list[TagDigest]:
    observation = replayed(state, coverage, chosen, cursor, stream=STREAM, concurrency=3)
    return check_versions(state, observation, chosen, cursor)


SEMVER: dict[str, Any] = {}
REGEX = {"tag_regex": "^1\\.0"}
SORTED = {"tag_regex": "^1\\.", "created_at_sort": True}
TAG = {"tag": "latest"}

COVERED = [
    # (recorded poll's source, its cursor, the check's source, the check's cursor)
    pytest.param(SEMVER, None, SEMVER, None, id="semver-same"),
    pytest.param(SEMVER, None, SEMVER, ("1.0.1", B), id="semver-cursor-after-full-poll"),
    pytest.param(SEMVER, ("1.0.0", A), SEMVER, ("1.0.0", A), id="semver-same-cursor"),
    pytest.param(SEMVER, None, {"semver_constraint": "~1.0"}, None, id="semver-constraint"),
    pytest.param(REGEX, None, REGEX, None, id="regex"),
    pytest.param(SEMVER, None, REGEX, None, id="regex-after-semver"),
    pytest.param(SORTED, None, SORTED, None, id="regex-created-at-sort"),
    pytest.param(TAG, None, TAG, ("latest", C), id="tag-unchanged"),
    pytest.param(TAG, ("latest", A), TAG, ("latest", A), id="tag-moved-cursor-present"),
    pytest.param(TAG, ("latest", F), TAG, ("latest", F), id="tag-moved-cursor-gone"),
    pytest.param(SEMVER, None, TAG, None, id="tag-after-semver"),
    pytest.param(SEMVER, None, {"tag": "1.1"}, None, id="alias-tag-after-semver"),
]


@pytest.mark.parametrize(("recorded", "first", "asked", "cursor"), COVERED)
def test_a_covered_check_answers_as_a_live_poll_would(
    recorded: dict[str, Any],
    first: tuple[str, str] | None,
    asked: dict[str, Any],
    cursor: tuple[str, str] | None,
) -> None:
    registry = Registry(TAGS)
    state, coverage, _ = poll(registry, selection(**recorded), cursor_of(first), RepoState())
    sent = registry.requests
    _, _, live = poll(registry, selection(**asked), cursor_of(cursor), state)

    logged = from_log(state, coverage, selection(**asked), cursor_of(cursor))

    assert logged == live
    assert logged, "every case here answers something"
    assert registry.requests > sent, "the live poll asked the registry again"


NOT_COVERED = [
    pytest.param(
        SEMVER,
        None,
        {},
        {"pre_releases": True},
        None,
        "did not look up 2.0.0-rc.1",
        id="prereleases",
    ),
    pytest.param(SEMVER, ("1.1.0", C), {}, SEMVER, None, "did not look up 1.0.0", id="cursor"),
    pytest.param(REGEX, None, {}, SEMVER, None, "did not look up 1.1.0", id="other-regex"),
    pytest.param(REGEX, None, {}, SORTED, None, "did not look up 1.1.0", id="sorted-after-regex"),
    pytest.param(
        {"tag_regex": "."},
        None,
        {},
        {"tag_regex": ".", "created_at_sort": True},
        None,
        "did not inspect",
        id="sort-needs-an-inspection",
    ),
    pytest.param(TAG, None, {}, SEMVER, None, "made no listing", id="semver-after-tag"),
    pytest.param(TAG, None, {}, {"tag": "dev"}, None, "did not look up dev", id="other-tag"),
    pytest.param(
        TAG, None, {}, TAG, ("latest", A), f"did not look up {A}", id="tag-cursor-not-asked"
    ),
    pytest.param(
        SEMVER,
        None,
        {"daemon": True},
        SEMVER,
        ("1.1.0", C),
        "did not look up 1.1.0",
        id="daemon-kept-a-full-version",
    ),
]


@pytest.mark.parametrize(("recorded", "first", "how", "asked", "cursor", "reason"), NOT_COVERED)
def test_a_check_the_poll_did_not_cover_is_not_answered(
    recorded: dict[str, Any],
    first: tuple[str, str] | None,
    how: dict[str, Any],
    asked: dict[str, Any],
    cursor: tuple[str, str] | None,
    reason: str,
) -> None:
    registry = Registry(TAGS)
    state, _, _ = poll(registry, selection(**recorded), None, RepoState())
    # A second poll: the one the check looks at (a daemon's knows the state it starts from).
    state, coverage, _ = poll(registry, selection(**recorded), cursor_of(first), state, **how)

    with pytest.raises(NotCovered, match=re.escape(reason)):
        from_log(state, coverage, selection(**asked), cursor_of(cursor))


def test_a_daemon_poll_covers_the_tags_it_asked_about() -> None:
    """An economical poll resolves `latest` (mutable) every time: a tag-mode check on it, or
    a semver check whose cursor is on nothing it kept, is answered."""
    registry = Registry(TAGS)
    state, _, _ = poll(registry, selection(), None, RepoState())
    state, coverage, _ = poll(registry, selection(), None, state, daemon=True)
    assert coverage.resolved == {"latest", "1.1"}

    assert from_log(state, coverage, selection(**TAG), None) == [TagDigest("latest", C)]


def test_a_tag_listed_but_gone_is_covered_as_missing() -> None:
    registry = Registry(TAGS, listed_only=("1.0.2",))
    state, coverage, _ = poll(registry, selection(**REGEX), None, RepoState())
    assert "1.0.2" in coverage.missing
    _, _, live = poll(registry, selection(**REGEX), None, state)

    assert from_log(state, coverage, selection(**REGEX), None) == live


def test_a_tag_the_log_learnt_after_the_listing_is_not_answered_over() -> None:
    """`out` pushed 3.0.0 and recorded it after the poll: the poll's listing is outdated."""
    registry = Registry(TAGS)
    state, coverage, _ = poll(registry, selection(), None, RepoState())
    later = RepoState(tags={**state.tags, "3.0.0": F}, images=state.images)

    with pytest.raises(NotCovered, match=r"tags the poll did not list: 3\.0\.0"):
        from_log(later, coverage, selection(), None)


def test_a_tag_gone_from_the_log_after_the_poll_is_not_answered_over() -> None:
    registry = Registry(TAGS)
    state, coverage, _ = poll(registry, selection(), None, RepoState())
    later = RepoState(tags={t: d for t, d in state.tags.items() if t != "latest"})

    with pytest.raises(NotCovered, match="latest left the log after the poll"):
        from_log(later, coverage, selection(), None)


def test_a_newer_digest_in_the_log_wins() -> None:
    """A tag moved by a later record (`out`) is answered as the log holds it now."""
    registry = Registry(TAGS)
    state, coverage, _ = poll(registry, selection(**TAG), None, RepoState())
    later = RepoState(tags={**state.tags, "latest": B})

    assert from_log(later, coverage, selection(**TAG), None) == [TagDigest("latest", B)]


def test_a_listing_too_long_to_keep_is_not_kept() -> None:
    tags = {f"0.0.{n}": A for n in range(LISTING_KEPT + 1)}
    registry = Registry(tags)
    _, coverage, _ = poll(registry, selection(tag_regex="^0\\.0\\.1$"), None, RepoState())

    assert coverage.listed is None
    assert coverage.resolved == {"0.0.1"}

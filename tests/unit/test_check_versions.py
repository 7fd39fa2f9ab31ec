"""Check semantics (spec §3) through observe → decide → fold → project, on an in-memory registry."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from regwatch.config import Source
from regwatch.decide import RepoState, decide, fold
from regwatch.errors import ConfigError
from regwatch.events import TagAppeared, TagDisappeared, TagMoved
from regwatch.frontends.sources import selection_of
from regwatch.observe import ImageFacts, Observation, observe
from regwatch.projections.versions import check_versions
from regwatch.specs import TagDigest

A, B, C, D, E = (f"sha256:{c * 64}" for c in "abcde")
NOW = datetime(2026, 3, 1, tzinfo=UTC)


class MemoryRegistry:
    """Tag → digest; `listed_only` tags are listed but their manifests are gone."""

    def __init__(
        self,
        tags: Mapping[str, str],
        *,
        listed_only: tuple[str, ...] = (),
        created: Mapping[str, datetime] | None = None,
    ) -> None:
        self.tags = dict(tags)
        self.listed_only = listed_only
        self.created = dict(created or {})
        self.lookups: list[str] = []
        self.inspections: list[str] = []
        self._lock = threading.Lock()

    def list_tags(self) -> list[str]:
        return [*self.tags, *self.listed_only]

    def digest(self, reference: str) -> str | None:
        with self._lock:
            self.lookups.append(reference)
        if reference.startswith("sha256:"):
            return reference if reference in self.tags.values() else None
        return self.tags.get(reference)

    def inspect(self, digest: str) -> ImageFacts:
        self.inspections.append(digest)
        return ImageFacts(
            digest, "application/vnd.oci.image.manifest.v1+json", 1, self.created.get(digest)
        )

    def manifest_facts(self, digest: str, *, whole: bool = False) -> ImageFacts | None:
        raise AssertionError("a check without a store inspects no moves")


def run(
    registry: MemoryRegistry,
    source: Mapping[str, Any],
    cursor: tuple[str, str] | None = None,
    state: RepoState | None = None,
) -> list[tuple[str, str]]:
    parsed = Source.model_validate({"repository": "example.com/app", **source})
    selection = selection_of(parsed)
    version = TagDigest(tag=cursor[0], digest=cursor[1]) if cursor else None
    before = state or RepoState()
    observation = observe(
        registry,
        selection,
        version,
        stream="example.com/app",
        now=lambda: NOW,
        concurrency=parsed.concurrency,
        known_images=frozenset(before.images),
    )
    after = fold(decide(before, observation), before)
    return [(v.tag, v.digest) for v in check_versions(after, observation, selection, version)]


# -- semver mode (§3.3), the upstream test table -------------------------------------------------

SEMVER_CASES = [
    pytest.param({"latest": A, "foo": B}, {}, [("latest", A)], id="latest tag"),
    pytest.param(
        {"1.0.0": A, "latest": B}, {}, [("1.0.0", A), ("latest", B)], id="latest unique digest"
    ),
    pytest.param(
        {"1": A, "2": B, "3": C, "latest": A}, {}, [("1", A), ("2", B), ("3", C)], id="latest older"
    ),
    pytest.param(
        {"0.9.0-foo": A, "1.0.0-foo": B, "foo": B, "1.0.0": C, "latest": D},
        {"variant": "foo"},
        [("0.9.0-foo", A), ("1.0.0-foo", B)],
        id="variants",
    ),
    pytest.param(
        {"0.8.0-foo": A, "foo": B},
        {"variant": "foo"},
        [("0.8.0-foo", A), ("foo", B)],
        id="bare variant unique",
    ),
    pytest.param({"foo": A, "bar": B}, {}, [], id="no semver tags"),
    pytest.param({"1.0.0": A, "foo": B}, {}, [("1.0.0", A)], id="semver and non-semver"),
    pytest.param(
        {"2.0.0": C, "1.0.0": A, "1.2.1": B},
        {},
        [("1.0.0", A), ("1.2.1", B), ("2.0.0", C)],
        id="ordering",
    ),
    pytest.param(
        {"1": A, "1.0": A, "1.0.0": A, "2": B, "2.1": B, "3.0.0": C},
        {},
        [("1.0.0", A), ("2.1", B), ("3.0.0", C)],
        id="most specific alias",
    ),
    pytest.param(
        {"v1.2.3": A, "1.2.3": A},
        {},
        [("v1.2.3", A)],
        id="alias tie keeps the first listed",
    ),
    pytest.param(
        {"1.0.0-rc.1": A, "1.0.0-rc1": A, "1.0.0-rc": A, "1.0.0": A},
        {"pre_releases": True},
        [("1.0.0", A)],
        id="final beats rcs",
    ),
    pytest.param({"1.0.0": A, "1.1.0-rc.1": B}, {}, [("1.0.0", A)], id="prereleases ignored"),
    pytest.param(
        {"1.0.0": A, "1.1.0-rc.1": B},
        {"pre_releases": True},
        [("1.0.0", A), ("1.1.0-rc.1", B)],
        id="prereleases opted in",
    ),
    pytest.param(
        {"1.0.0-alpine": A, "1.0.0-rc.1": B, "1.0.0-rc.1-bar": C},
        {"pre_releases": True},
        [("1.0.0-rc.1", B)],
        id="variants are not prereleases",
    ),
    pytest.param(
        {"2.0.0-build.1": A, "2.0.0-rc.1": B},
        {"pre_releases": True, "pre_release_prefixes": ["build"]},
        [("2.0.0-build.1", A), ("2.0.0-rc.1", B)],
        id="prerelease prefixes",
    ),
    pytest.param(
        {
            "1.1.0": A,
            "1.2.1": B,
            "1.2.2": C,
            "v1.2.3": D,
            "1.3.0": E,
            "latest": "sha256:" + "f" * 64,
        },
        {"semver_constraint": "1.2.x"},
        [("1.2.1", B), ("1.2.2", C), ("v1.2.3", D)],
        id="constraint hides latest",
    ),
]


@pytest.mark.parametrize(("tags", "source", "expected"), SEMVER_CASES)
def test_semver_mode(
    tags: dict[str, str], source: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert run(MemoryRegistry(tags), source) == expected


def test_cursor_skips_older_tags_without_resolving_them() -> None:
    registry = MemoryRegistry({"1.0.0": A, "1.2.1": B, "2.0.0": C})
    assert run(registry, {}, ("1.2.1", B)) == [("1.2.1", B), ("2.0.0", C)]
    assert "1.0.0" not in registry.lookups


def test_cursor_with_another_digest_gives_the_full_list() -> None:
    registry = MemoryRegistry({"1.0.0": A, "1.2.1": B, "2.0.0": C})
    assert run(registry, {}, ("1.2.1", D)) == [("1.0.0", A), ("1.2.1", B), ("2.0.0", C)]


def test_cursor_tag_gone_gives_the_full_list() -> None:
    registry = MemoryRegistry({"1.0.0": A, "2.0.0": C})
    assert run(registry, {}, ("1.2.1", B)) == [("1.0.0", A), ("2.0.0", C)]


def test_q2_latest_on_an_older_version_is_not_a_new_version() -> None:
    registry = MemoryRegistry({"1.0.0": A, "1.2.1": B, "2.0.0": C, "latest": A})
    assert run(registry, {}, ("1.2.1", B)) == [("1.2.1", B), ("2.0.0", C)]


def test_q2_latest_on_a_unique_image_is_still_emitted() -> None:
    registry = MemoryRegistry({"1.0.0": A, "1.2.1": B, "2.0.0": C, "latest": D})
    assert run(registry, {}, ("1.2.1", B)) == [("1.2.1", B), ("2.0.0", C), ("latest", D)]


def test_q3_listed_bare_tag_without_manifest_is_skipped() -> None:
    registry = MemoryRegistry({"1.0.0": A}, listed_only=("latest", "2.0.0"))
    assert run(registry, {}) == [("1.0.0", A)]


@pytest.mark.parametrize("concurrency", [1, 2, 8, 64])
def test_concurrency_does_not_change_the_answer(concurrency: int) -> None:
    tags = {
        f"1.{minor}.{patch}": f"sha256:{minor:032x}{patch:032x}"
        for minor in range(8)
        for patch in range(8)
    }
    tags["1.3"] = tags["1.3.7"]
    tags["latest"] = tags["1.7.7"]
    expected = run(MemoryRegistry(tags), {"concurrency": 1})
    assert run(MemoryRegistry(tags), {"concurrency": concurrency}) == expected
    assert len(expected) == 64


def test_bad_constraint_fails_after_listing() -> None:
    with pytest.raises(ConfigError, match="improper constraint"):
        run(MemoryRegistry({"1.0.0": A}), {"semver_constraint": ">>1"})


# -- tag mode (§3.2) -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "cursor", "expected"),
    [
        pytest.param({"v": B}, None, [("v", B)], id="no cursor"),
        pytest.param({}, ("v", A), [], id="tag missing"),
        pytest.param({"v": B}, ("v", B), [("v", B)], id="up to date"),
        pytest.param(
            {"v": B, "old": A}, ("v", A), [("v", A), ("v", B)], id="moved, old digest exists"
        ),
        pytest.param({"v": B}, ("v", A), [("v", B)], id="moved, old digest gone"),
        pytest.param({"v": B, "old": A}, ("", A), [("v", A), ("v", B)], id="cursor without tag"),
    ],
)
def test_tag_mode(
    tags: dict[str, str], cursor: tuple[str, str] | None, expected: list[tuple[str, str]]
) -> None:
    assert (
        run(MemoryRegistry(tags), {"tag": "v", "variant": "x", "tag_regex": "nope"}, cursor)
        == expected
    )


def test_tag_mode_with_a_number() -> None:
    parsed = Source.model_validate({"repository": "x", "tag": 42})
    assert parsed.tag == "42"
    assert run(MemoryRegistry({"42": A}), {"tag": 42}) == [("42", A)]


# -- regex mode (§3.4) ---------------------------------------------------------------------------


def test_regex_is_unanchored_and_keeps_listing_order() -> None:
    registry = MemoryRegistry({"grey": B, "green": C, "gray": A, "black": D})
    assert run(registry, {"tag_regex": "gr(a|e)y", "semver_constraint": "1.2.x"}) == [
        ("grey", B),
        ("gray", A),
    ]


def test_regex_created_at_sort_is_oldest_first() -> None:
    created = {
        A: datetime(2021, 1, 1, 5, tzinfo=UTC),
        B: datetime(2021, 1, 1, 0, tzinfo=UTC),
        C: datetime(2021, 1, 1, 4, tzinfo=UTC),
    }
    registry = MemoryRegistry({"gem-1338-x": A, "gem-182-x": B, "gem-1337-x": C}, created=created)
    assert run(registry, {"tag_regex": "gem", "created_at_sort": True}) == [
        ("gem-182-x", B),
        ("gem-1337-x", C),
        ("gem-1338-x", A),
    ]


def test_regex_created_at_inspects_each_digest_once() -> None:
    registry = MemoryRegistry({"a1": A, "a2": A, "a3": B}, created={A: NOW, B: NOW})
    run(registry, {"tag_regex": "a", "created_at_sort": True})
    assert sorted(registry.inspections) == [A, B]


def test_bad_regex_fails_before_listing() -> None:
    registry = MemoryRegistry({"a": A})
    registry.list_tags = lambda: pytest.fail("listed tags despite a bad regex")  # type: ignore[method-assign]
    with pytest.raises(ConfigError, match="invalid regex pattern: tag_regex"):
        run(registry, {"tag_regex": "("})


# -- decide ----------------------------------------------------------------------------------------


def test_decide_records_appear_move_and_disappear() -> None:
    state = fold(
        [
            TagAppeared(tag="a", digest=A),
            TagAppeared(tag="b", digest=B),
            TagAppeared(tag="c", digest=C),
        ]
    )
    observation = Observation(
        stream="s", taken_at=NOW, listed=("a", "b", "d"), resolved={"a": A, "b": D, "d": E}
    )
    assert decide(state, observation) == [
        TagMoved(tag="b", old_digest=B, new_digest=D),
        TagAppeared(tag="d", digest=E),
        TagDisappeared(tag="c", digest=C),
    ]


def test_decide_without_a_listing_only_speaks_of_tags_it_looked_at() -> None:
    state = fold([TagAppeared(tag="a", digest=A), TagAppeared(tag="b", digest=B)])
    observation = Observation(stream="s", taken_at=NOW, resolved={"a": A}, missing=frozenset({"x"}))
    assert decide(state, observation) == []
    gone = Observation(stream="s", taken_at=NOW, missing=frozenset({"b"}))
    assert decide(state, gone) == [TagDisappeared(tag="b", digest=B)]

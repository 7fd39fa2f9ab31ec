"""A recording poll describes the moves it sees: which manifests it inspects, what decide makes
of them (the watch's platform on every tag event, and whether that platform's image changed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from regwatch.decide import RepoState, decide, fold
from regwatch.events import Event, TagAppeared, TagDisappeared, TagMoved
from regwatch.observe import ImageFacts, Observation, observe
from regwatch.specs import Selection

NOW = datetime(2026, 12, 7, tzinfo=UTC)
A, B, C, D, E, F = ("sha256:" + c * 64 for c in "abcdef")
INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE = "application/vnd.oci.image.manifest.v1+json"


class Registry:
    """Tags and manifests in memory; counts what a poll asks for."""

    def __init__(self, tags: dict[str, str], manifests: dict[str, ImageFacts]) -> None:
        self.tags = tags
        self.manifests = manifests
        self.described: list[str] = []
        self.inspected: list[str] = []

    def list_tags(self) -> list[str]:
        return list(self.tags)

    def digest(self, reference: str) -> str | None:
        return self.tags.get(reference)

    def inspect(self, digest: str) -> ImageFacts:
        self.inspected.append(digest)
        return self.manifests[digest]

    def manifest_facts(self, digest: str, *, whole: bool = False) -> ImageFacts | None:
        (self.inspected if whole else self.described).append(digest)
        return self.manifests.get(digest)


def index(digest: str, **children: str) -> ImageFacts:
    """An index whose children are given as platform=child digest (`linux_arm64_v8=…`)."""
    platforms = []
    for name, child in children.items():
        os, architecture, *variant = name.split("_")
        platforms.append((os, architecture, variant[0] if variant else None, child))
    return ImageFacts(digest, INDEX, 300, None, tuple(platforms))


def image(digest: str) -> ImageFacts:
    return ImageFacts(digest, IMAGE, 500, None)


def poll(
    registry: Registry,
    known: dict[str, str],
    *,
    selection: Selection | None = None,
    inspect_moves: bool = True,
    known_images: frozenset[str] = frozenset(),
    platform: str | None = None,
) -> Observation:
    return observe(
        registry,
        selection or Selection(tag_regex="."),
        None,
        stream="r",
        now=lambda: NOW,
        concurrency=2,
        known_tags=known,
        known_images=known_images,
        inspect_moves=inspect_moves,
        platform=platform,
    )


def test_old_and_new_manifests_of_a_moved_tag_are_described_and_appeared_ones_are_not() -> None:
    registry = Registry(
        {"latest": B, "1.0.0": C, "new": D}, {A: index(A), B: index(B), D: image(D)}
    )

    observation = poll(registry, {"latest": A, "1.0.0": C})

    assert sorted(registry.described) == [A, B]
    assert registry.inspected == []
    assert {facts.digest for facts in observation.inspected} == {A, B}


def test_known_images_are_not_described_again_and_a_gone_manifest_is_no_fact() -> None:
    registry = Registry({"latest": B, "edge": D}, {B: image(B)})

    observation = poll(registry, {"latest": A, "edge": C}, known_images=frozenset({C}))

    assert sorted(registry.described) == [A, B, D]
    assert [facts.digest for facts in observation.inspected] == [B]


def test_without_a_store_nothing_is_described() -> None:
    registry = Registry({"latest": B}, {A: image(A), B: image(B)})

    observation = poll(registry, {"latest": A}, inspect_moves=False)

    assert registry.described == registry.inspected == []
    assert observation.inspected == ()


def test_a_mode_that_reads_configs_inspects_moves_whole_and_a_gone_one_is_no_fact() -> None:
    registry = Registry({"latest": B}, {B: image(B)})

    observation = poll(
        registry, {"latest": A}, selection=Selection(tag_regex=".", created_at_sort=True)
    )

    assert sorted(registry.inspected) == [A, B]
    assert registry.described == []
    assert [facts.digest for facts in observation.inspected] == [B]


def decided(
    known: dict[str, str], manifests: dict[str, ImageFacts], platform: str | None
) -> list[Event]:
    registry = Registry(
        {"latest": B, "new": E}, {**manifests, **{d: image(d) for d in (E,) if d not in manifests}}
    )
    state = fold([TagAppeared(tag=tag, digest=digest) for tag, digest in known.items()])
    return decide(state, poll(registry, known, platform=platform))


@pytest.mark.parametrize(
    ("old", "new", "platform", "changed"),
    [
        # only the index around the platform changed: another platform was added
        (
            index(A, linux_amd64=C),
            index(B, linux_amd64=C, linux_arm64_v8=D),
            "linux/amd64",
            False,
        ),
        (index(A, linux_amd64=C), index(B, linux_amd64=D), "linux/amd64", True),
        (index(A, linux_arm64_v8=C), index(B, linux_arm64_v8=D), "linux/arm64", True),
        (index(A, linux_arm64_v8=C), index(B, linux_arm64_v7=C), "linux/arm64/v8", None),
        (image(A), image(B), "linux/amd64", True),
        (image(A), index(B, linux_amd64=A), "linux/amd64", False),
        (index(A, linux_amd64=C), index(B, linux_amd64=D), None, None),
    ],
)
def test_a_move_says_whether_the_watch_platform_changed(
    old: ImageFacts, new: ImageFacts, platform: str | None, changed: bool | None
) -> None:
    events = decided({"latest": A}, {A: old, B: new}, platform)

    moved = [e for e in events if isinstance(e, TagMoved)]
    assert moved == [
        TagMoved(
            tag="latest",
            old_digest=A,
            new_digest=B,
            platform=platform,
            platform_changed=changed,
        )
    ]
    assert TagAppeared(tag="new", digest=E, platform=platform) in events


def test_a_move_whose_old_manifest_is_gone_does_not_know() -> None:
    events = decided({"latest": A}, {B: index(B, linux_amd64=C)}, "linux/amd64")

    assert [e.platform_changed for e in events if isinstance(e, TagMoved)] == [None]


def test_a_disappearance_names_the_platform() -> None:
    state = fold([TagAppeared(tag="gone", digest=A)])
    observation = Observation(stream="r", taken_at=NOW, listed=(), platform="linux/arm64")

    assert decide(state, observation) == [
        TagDisappeared(tag="gone", digest=A, platform="linux/arm64")
    ]


def test_the_state_ignores_the_platform() -> None:
    state = fold([TagAppeared(tag="x", digest=A, platform="linux/arm64")])

    assert state == RepoState(tags={"x": A})

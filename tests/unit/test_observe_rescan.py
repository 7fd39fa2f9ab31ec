"""`observe` with a rescan cycle (a daemon's poll): what it resolves, with a fake registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from regwatch.observe import ImageFacts, observe
from regwatch.specs import Selection

NOW = datetime(2026, 12, 7, tzinfo=UTC)
LISTED = ["1.0.0", "1.0.1", "1.1", "1.2.0", "stable", "2.0.0", "latest"]


class Registry:
    def __init__(self) -> None:
        self.resolved: list[str] = []

    def list_tags(self) -> list[str]:
        return LISTED

    def digest(self, reference: str) -> str | None:
        self.resolved.append(reference)
        return f"sha256:{reference}"

    def inspect(self, digest: str) -> ImageFacts:
        raise AssertionError("not inspected")

    def manifest_facts(self, digest: str, *, whole: bool = False) -> ImageFacts | None:
        raise AssertionError("not inspected")


def resolved(selection: Selection, known: list[str]) -> list[str]:
    registry = Registry()
    observation = observe(
        registry,
        selection,
        None,
        stream="r",
        now=lambda: NOW,
        concurrency=1,
        known_tags={tag: f"sha256:{tag}" for tag in known},
        rescan=timedelta(hours=24),
        last_poll=NOW,
    )
    assert observation.listed == tuple(LISTED)
    assert sorted(observation.resolved) == sorted(registry.resolved)
    return registry.resolved


def test_a_regex_watch_resolves_its_new_and_mutable_matches() -> None:
    known = ["1.0.0", "1.0.1", "1.1", "stable"]
    assert resolved(Selection(tag_regex=r"^1\."), known) == ["1.1", "1.2.0"]


def test_a_semver_watch_resolves_new_versions_aliases_and_latest() -> None:
    known = ["1.0.0", "1.0.1", "1.1", "latest"]
    assert resolved(Selection(), known) == ["1.1", "1.2.0", "2.0.0", "latest"]


def test_without_a_known_state_everything_the_mode_selects_is_resolved() -> None:
    assert resolved(Selection(), []) == ["1.0.0", "1.0.1", "1.1", "1.2.0", "2.0.0", "latest"]

"""Every row of spec §6.6.1's alias table, plus the notes under it."""

from __future__ import annotations

import pytest

from regwatch.projections.aliases import decide_aliases, version_tag
from regwatch.versioning import parse_version


def pushed(existing: list[str], variant: str | None, version: str) -> set[str]:
    parsed = parse_version(version)
    assert parsed is not None
    decision = decide_aliases(existing, parsed, variant)
    return {version_tag(parsed, variant), *decision.aliases}


@pytest.mark.parametrize(
    ("existing", "variant", "version", "expected"),
    [
        ([], None, "1.2.3", {"1.2.3", "1.2", "1", "latest"}),
        ([], None, "1.2.3-alpha.1", {"1.2.3-alpha.1"}),
        (["1.2.2"], None, "1.2.3", {"1.2.3", "1.2", "1", "latest"}),
        (["1.2.4"], None, "1.2.3", {"1.2.3"}),
        (["1.3.0"], None, "1.2.3", {"1.2.3", "1.2"}),
        (["2.0.0"], None, "1.2.3", {"1.2.3", "1.2", "1"}),
        (["1.3.0"], "lts", "1.2.3", {"1.2.3-lts", "1.2-lts", "1-lts", "lts"}),
        (["2.0.0-rc.1"], None, "1.2.3", {"1.2.3", "1.2", "1", "latest"}),
        (["2.0.0-goodbye"], "hello", "1.2.3", {"1.2.3-hello", "1.2-hello", "1-hello", "hello"}),
        ([], "hello", "1.2.3", {"1.2.3-hello", "1.2-hello", "1-hello", "hello"}),
        (["2.0.0-hello"], "hello", "1.2.3", {"1.2.3-hello", "1.2-hello", "1-hello"}),
        (["1.2.2-hello"], "hello", "1.2.3", {"1.2.3-hello", "1.2-hello", "1-hello", "hello"}),
        (["1.2.4-hello"], "hello", "1.2.3", {"1.2.3-hello"}),
        (["1.3.0-hello"], "hello", "1.2.3", {"1.2.3-hello", "1.2-hello"}),
        (["1.3"], None, "1.2.3", {"1.2.3", "1.2"}),
        (["1", "1.2", "1.2.3", "latest"], None, "1.2.3", {"1.2.3", "1.2", "1", "latest"}),
        (["2.0.0-goodbye"], None, "1.2.3", {"1.2.3", "1.2", "1", "latest"}),
        (["v1.2.3"], None, "v1.2", {"1.2.0"}),
    ],
)
def test_alias_table(
    existing: list[str], variant: str | None, version: str, expected: set[str]
) -> None:
    assert pushed(existing, variant, version) == expected


def test_aliases_come_in_order_and_say_why_they_stay() -> None:
    version = parse_version("1.2.3")
    assert version is not None
    decision = decide_aliases(["1.3.0"], version, None)
    assert decision.aliases == ("1.2",)
    assert decision.held_back == ("latest stays: 1.3.0 is newer", "1 stays: 1.3.0 is newer")
    assert decide_aliases([], version, "lts").aliases == ("lts", "1-lts", "1.2-lts")


@pytest.mark.parametrize(
    ("version", "variant", "tag"),
    [("v1.2", None, "1.2.0"), ("01.2.3", None, "1.2.3"), ("1.2.3-rc.1+b7", "x", "1.2.3-rc.1+b7-x")],
)
def test_version_tags_are_normalised(version: str, variant: str | None, tag: str) -> None:
    parsed = parse_version(version)
    assert parsed is not None
    assert version_tag(parsed, variant) == tag

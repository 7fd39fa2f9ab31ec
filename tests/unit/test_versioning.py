from __future__ import annotations

import random

import pytest

from regwatch.errors import ConfigError
from regwatch.versioning import (
    Version,
    compare,
    parse_constraint,
    parse_version,
    prerelease_accepted,
    specificity,
    why_not_a_version,
)


def version(text: str) -> Version:
    parsed = parse_version(text)
    assert parsed is not None, text
    return parsed


# --- parsing (Masterminds NewVersion, coercing) -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "major", "minor", "patch", "prerelease", "metadata"),
    [
        ("1.2.3", 1, 2, 3, "", ""),
        ("v1.2.3", 1, 2, 3, "", ""),
        ("1.2", 1, 2, 0, "", ""),
        ("v1.2", 1, 2, 0, "", ""),
        ("1", 1, 0, 0, "", ""),
        ("v1", 1, 0, 0, "", ""),
        ("0.0.0", 0, 0, 0, "", ""),
        ("01.2.3", 1, 2, 3, "", ""),
        ("1.02.003", 1, 2, 3, "", ""),
        ("00", 0, 0, 0, "", ""),
        ("1.2.3-beta", 1, 2, 3, "beta", ""),
        ("1.2.3-beta.1", 1, 2, 3, "beta.1", ""),
        ("1.2.3-rc.1-bar", 1, 2, 3, "rc.1-bar", ""),
        ("1.2.3-1-bar", 1, 2, 3, "1-bar", ""),
        ("1.2.3-0", 1, 2, 3, "0", ""),
        ("1.2.3-0a", 1, 2, 3, "0a", ""),
        ("1.2.3-alpha.0", 1, 2, 3, "alpha.0", ""),
        ("1.2.3--", 1, 2, 3, "-", ""),
        ("1.0.0-x.7.z.92", 1, 0, 0, "x.7.z.92", ""),
        ("1.0.0-rc1", 1, 0, 0, "rc1", ""),
        ("1.2.3-DEV-SNAPSHOT", 1, 2, 3, "DEV-SNAPSHOT", ""),
        ("1.2-rc.1", 1, 2, 0, "rc.1", ""),
        ("1-rc", 1, 0, 0, "rc", ""),
        ("1.2.3+build", 1, 2, 3, "", "build"),
        ("1.2.3+build.01", 1, 2, 3, "", "build.01"),
        ("1.2.3+meta-valid", 1, 2, 3, "", "meta-valid"),
        ("1.2.3-beta+exp.sha.5114f85", 1, 2, 3, "beta", "exp.sha.5114f85"),
        ("1+b", 1, 0, 0, "", "b"),
        ("v2.3.5-20161202202307-sha.e8fc5e5", 2, 3, 5, "20161202202307-sha.e8fc5e5", ""),
        ("1.2.3----RC-SNAPSHOT.12.9.1--.12+788", 1, 2, 3, "---RC-SNAPSHOT.12.9.1--.12", "788"),
        ("18446744073709551615.0.0", 2**64 - 1, 0, 0, "", ""),
        ("0000000000000000000000001.2.3", 1, 2, 3, "", ""),
        ("1.2.3-18446744073709551616", 1, 2, 3, "18446744073709551616", ""),
    ],
)
def test_parse_version_accepts(
    text: str, major: int, minor: int, patch: int, prerelease: str, metadata: str
) -> None:
    assert parse_version(text) == Version(major, minor, patch, prerelease, metadata, text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "v",
        "V1.2.3",
        "vv1.2.3",
        "1.2.3.4",
        "12.3.4.1234",
        "1.",
        ".1",
        "1..2",
        "1.2.",
        "-1.2.3",
        "+1.2.3",
        "1.2.3-",
        "1.2.3+",
        "1.2.3-+b",
        "1.2.3-a..b",
        "1.2.3-.a",
        "1.2.3-a.",
        "1.2.3+a..b",
        "1.2.3+a+b",
        "1.2.3-rc.01",
        "1.2.3-01",
        "1.2.3-00",
        "1.2.3-beta_1",
        "1.2.3-béta",
        " 1.2.3",
        "1.2.3 ",
        "1.2.3\n",
        "1 .2",
        "latest",
        "foo",
        "alpine",
        "1.2.x",
        "1.*",
        "1_0.2.3",
        "١.٢.٣",
        "18446744073709551616.0.0",
        "1.18446744073709551616",
        "1" * 5000,
        "1.2.3-" + "1" * 5000 + "x.01",
    ],
)
def test_parse_version_rejects(text: str) -> None:
    assert parse_version(text) is None


def test_parse_version_keeps_the_original_text() -> None:
    assert version("v01.2-rc.1+b").original == "v01.2-rc.1+b"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1.2.3", False), ("1.2.3+b", False), ("1.2.3-0", True), ("v1-rc", True)],
)
def test_is_prerelease(text: str, expected: bool) -> None:
    assert version(text).is_prerelease is expected


# --- precedence ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1.2.3", "1.2.3", 0),
        ("1.2", "1.2.0", 0),
        ("1", "1.0.0", 0),
        ("v1.2.3", "1.2.3", 0),
        ("01.2.3", "1.2.3", 0),
        ("1.2.3+a", "1.2.3+b", 0),
        ("1.2.3-rc.1+a", "1.2.3-rc.1", 0),
        ("1.2.3", "1.2.4", -1),
        ("1.3.0", "1.2.9", 1),
        ("1.10.0", "1.9.0", 1),
        ("2.0.0", "10.0.0", -1),
        ("0.0.0", "0.0.0-0", 1),
        ("1.0.0-rc.1", "1.0.0", -1),
        ("1.0.0", "1.0.1-alpha", -1),
        ("1.0.0-alpha.10", "1.0.0-alpha.9", 1),
        ("1.0.0-99", "1.0.0-100", -1),
        ("1.0.0-1", "1.0.0-a", -1),
        ("1.0.0-A", "1.0.0-a", -1),
        ("1.0.0-BETA", "1.0.0-alpha", -1),
        ("1.0.0-alpha", "1.0.0-alpha.0", -1),
        ("1.0.0-rc", "1.0.0-rc.1", -1),
        ("1.0.0-rc.1", "1.0.0-rc1", -1),
        ("1.0.0-alpha.1", "1.0.0-alpha.1-bar", -1),
        ("1.0.0-1-bar", "1.0.0-2", 1),
        ("2.0.0-build.1", "2.0.0-rc.1", -1),
        # Past uint64 an identifier is text to Masterminds (ParseUint fails): byte-wise order.
        ("1.0.0-99999999999999999999", "1.0.0-100000000000000000000", 1),
        ("1.0.0-" + "9" * 5000, "1.0.0-" + "1" * 5001, 1),
    ],
)
def test_compare(a: str, b: str, expected: int) -> None:
    va, vb = version(a), version(b)
    assert compare(va, vb) == expected
    assert compare(vb, va) == -expected
    assert va.same_precedence(vb) is (expected == 0)
    assert (va < vb, va <= vb, va > vb, va >= vb) == (
        expected < 0,
        expected <= 0,
        expected > 0,
        expected >= 0,
    )


@pytest.mark.parametrize(
    "ascending",
    [
        # SemVer 2.0 §11.4
        [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
        ],
        # spec §3.3.5, "opting in to prereleases allows additional '-' suffixes before variant"
        [
            "1.0.0-alpha.1",
            "1.0.0-alpha.1-bar",
            "1.0.0-beta.1",
            "1.0.0-beta.1-bar",
            "1.0.0-build",
            "1.0.0-rc.1",
            "1.0.0-rc.1-bar",
        ],
        # spec §3.3.3, "prerelease prefixes opted in"
        ["1.0.0", "2.0.0-alpha.1", "2.0.0-beta.1", "2.0.0-build.1", "2.0.0-rc.1", "2.0.0"],
        # "mixed specificity semver tags"
        ["1", "2.1", "3.0.0", "3.1.0", "3.2.1"],
        ["0.0.1", "0.1.0", "v0.9.9", "1.0.0-rc1", "1.0.0", "1.2.1", "2.0.0", "10.0.0"],
    ],
)
def test_sorted_orders_by_precedence(ascending: list[str]) -> None:
    shuffled = ascending[:]
    random.Random(7).shuffle(shuffled)
    assert [v.original for v in sorted(version(t) for t in shuffled)] == ascending
    assert [v.original for v in sorted(version(t) for t in shuffled)[::-1]] == ascending[::-1]


def test_sorted_keeps_listing_order_for_equal_precedence() -> None:
    tags = ["1.2.3", "v1.2.3", "1.2.3+b", "01.2.3", "1.2"]
    assert [v.original for v in sorted(version(t) for t in tags)] == ["1.2", *tags[:4]]


def test_equality_is_field_equality_not_precedence() -> None:
    a, b = version("1.2.3"), version("v1.2.3")
    assert a.same_precedence(b)
    assert a != b
    assert version("1.2.3") == version("1.2.3")
    assert hash(version("1.2.3")) == hash(version("1.2.3"))
    assert len({version("1.2.3"), version("1.2.3"), version("1.2.3+b")}) == 2


def test_ordering_against_other_types_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        _ = version("1.2.3") < "1.2.4"


# --- constraints ---------------------------------------------------------------------------------

ALLOWS = [
    # Masterminds TestConstraintCheck (single terms)
    ("=2.0.0", "1.2.3", False),
    ("=2.0.0", "2.0.0", True),
    ("=2.0", "1.2.3", False),
    ("=2.0", "2.0.0", True),
    ("=2.0", "2.0.1", True),
    ("4.1", "4.1.0", True),
    ("!=4.1.0", "4.1.0", False),
    ("!=4.1.0", "4.1.1", True),
    ("!=4.1", "4.1.0", False),
    ("!=4.1", "4.1.1", False),
    ("!=4.1", "5.1.0-alpha.1", False),
    ("!=4.1-alpha", "4.1.0", True),
    ("!=4.1", "5.1.0", True),
    ("<11", "0.1.0", True),
    ("<11", "11.1.0", False),
    ("<1.1", "0.1.0", True),
    ("<1.1", "1.1.0", False),
    ("<1.1", "1.1.1", False),
    ("<=11", "1.2.3", True),
    ("<=11", "12.2.3", False),
    ("<=11", "11.2.3", True),
    ("<=1.1", "1.2.3", False),
    ("<=1.1", "0.1.0", True),
    ("<=1.1", "1.1.0", True),
    ("<=1.1", "1.1.1", True),
    (">1.1", "4.1.0", True),
    (">1.1", "1.1.0", False),
    (">0", "0", False),
    (">0", "1", True),
    (">0", "0.0.1-alpha", False),
    (">0.0", "0.0.1-alpha", False),
    (">0-0", "0.0.1-alpha", False),
    (">0.0-0", "0.0.1-alpha", False),
    (">0", "0.0.0-alpha", False),
    (">0-0", "0.0.0-alpha", False),
    (">0.0.0-0", "0.0.0-alpha", True),
    (">1.2.3-alpha.1", "1.2.3-alpha.2", True),
    (">1.2.3-alpha.1", "1.3.3-alpha.2", True),
    (">11", "11.1.0", False),
    (">11.1", "11.1.0", False),
    (">11.1", "11.1.1", False),
    (">11.1", "11.2.1", True),
    (">=11", "11.1.2", True),
    (">=11.1", "11.1.2", True),
    (">=11.1", "11.0.2", False),
    (">=1.1", "4.1.0", True),
    (">=1.1", "1.1.0", True),
    (">=1.1", "0.0.9", False),
    (">=0", "0.0.1-alpha", False),
    (">=0.0", "0.0.1-alpha", False),
    (">=0-0", "0.0.1-alpha", True),
    (">=0.0-0", "0.0.1-alpha", True),
    (">=0", "0.0.0-alpha", False),
    (">=0-0", "0.0.0-alpha", True),
    (">=0.0.0-0", "0.0.0-alpha", True),
    (">=0.0.0-0", "1.2.3", True),
    (">=0.0.0-0", "3.4.5-beta.1", True),
    ("<0", "0.0.0-alpha", False),
    ("<0-z", "0.0.0-alpha", True),
    (">=0", "0", True),
    ("=0", "1", False),
    ("*", "1", True),
    ("*", "4.5.6", True),
    ("*", "1.2.3-alpha.1", False),
    ("*-0", "1.2.3-alpha.1", True),
    ("2.*", "1", False),
    ("2.*", "3.4.5", False),
    ("2.*", "2.1.1", True),
    ("2.1.*", "2.1.1", True),
    ("2.1.*", "2.2.1", False),
    ("2", "1", False),
    ("2", "3.4.5", False),
    ("2", "2.1.1", True),
    ("2.1", "2.1.1", True),
    ("2.1", "2.2.1", False),
    ("~1.2.3", "1.2.4", True),
    ("~1.2.3", "1.3.4", False),
    ("~1.2", "1.2.4", True),
    ("~1.2", "1.3.4", False),
    ("~1", "1.2.4", True),
    ("~1", "2.3.4", False),
    ("~0.2.3", "0.2.5", True),
    ("~0.2.3", "0.3.5", False),
    ("~1.2.3-beta.2", "1.2.3-beta.4", True),
    ("~1.2.3-beta.2", "1.2.4-beta.2", True),
    ("~1.2.3-beta.2", "1.3.4-beta.2", False),
    ("^1.2.3", "1.8.9", True),
    ("^1.2.3", "2.8.9", False),
    ("^1.2.3", "1.2.1", False),
    ("^1.1.0", "2.1.0", False),
    ("^1.2.0", "2.2.1", False),
    ("^1.2.0", "1.2.1-alpha.1", False),
    ("^1.2.0-alpha.0", "1.2.1-alpha.1", True),
    ("^1.2.0-alpha.0", "1.2.1-alpha.0", True),
    ("^1.2.0-alpha.2", "1.2.0-alpha.1", False),
    ("^1.2", "1.8.9", True),
    ("^1.2", "2.8.9", False),
    ("^1", "1.8.9", True),
    ("^1", "2.8.9", False),
    ("^0.2.3", "0.2.5", True),
    ("^0.2.3", "0.5.6", False),
    ("^0.2", "0.2.5", True),
    ("^0.2", "0.5.6", False),
    ("^0.0.3", "0.0.3", True),
    ("^0.0.3", "0.0.4", False),
    ("^0.0", "0.0.3", True),
    ("^0.0", "0.1.4", False),
    ("^0.0", "1.0.4", False),
    ("^0", "0.2.3", True),
    ("^0", "1.1.4", False),
    ("^0.2.3-beta.2", "0.2.3-beta.4", True),
    ("^0.2.3-beta.2", "0.2.4-beta.2", True),
    ("^0.2.3-beta.2", "0.3.4-beta.2", False),
    ("^0.2.3-beta.2", "0.2.3-beta.2", True),
    # Masterminds TestConstraintsCheck (whole constraints)
    ("*", "1.2.3", True),
    ("~0.0.0", "1.2.3", True),
    ("0.x.x", "1.2.3", False),
    ("0.0.x", "1.2.3", False),
    ("0.0.0", "1.2.3", False),
    ("^0.0.0", "1.2.3", False),
    ("= 2.0", "1.2.3", False),
    ("= 2.0", "2.0.0", True),
    ("4.1.x", "4.1.3", True),
    ("1.x", "1.4", True),
    ("!=4.1-alpha", "4.1.0-alpha", False),
    ("!=4.1-alpha", "4.1.1-alpha", False),
    ("!=4.x", "5.1.0", True),
    ("!=4.x", "4.1.0", False),
    ("!=4.1.x", "4.2.0", True),
    ("!=4.2.x", "4.2.3", False),
    ("<1.x", "1.1.1", False),
    ("<1.x", "0.1.1", True),
    ("<1.x", "2.0.0", False),
    ("<1.1.x", "1.2.1", False),
    ("<1.1.x", "1.1.500", False),
    ("<1.1.x", "1.0.500", True),
    ("<1.2.x", "1.1.1", True),
    (">=1.1", "4.1.0-beta", False),
    ("<=1.1", "0.1.0-alpha", False),
    ("<=1.1-a", "0.1.0-alpha", True),
    ("<=1.x", "1.1.0", True),
    ("<=2.x", "3.0.0", False),
    ("<=1.1.x", "1.2.500", False),
    ("<=4.5", "3.4.0", True),
    ("<=4.5", "3.7.0", True),
    ("<=4.5", "4.6.3", False),
    (">1.1, <2", "1.1.1", False),
    (">1.1, <2", "1.2.1", True),
    (">1.1, <3", "4.3.2", False),
    (">=1.1, <2, !=1.2.3", "1.2.3", False),
    (">1.1 <2", "1.1.1", False),
    (">1.1 <2", "1.2.1", True),
    (">1.1    <3", "4.3.2", False),
    (">=1.1    <2    !=1.2.3", "1.2.3", False),
    (">=1.1, <2, !=1.2.3 || > 3", "4.1.2", True),
    (">=1.1, <2, !=1.2.3 || > 3", "3.1.2", False),
    (">=1.1, <2, !=1.2.3 || >= 3", "3.0.0", True),
    (">=1.1, <2, !=1.2.3 || > 3", "3.0.0", False),
    (">=1.1, <2, !=1.2.3 || > 3", "1.2.3", False),
    (">=1.1 <2 !=1.2.3 || > 3", "1.5.0", True),
    ("> 1.1, <     2", "1.1.1", False),
    (">   1.1, <2", "1.2.1", True),
    (">= 1.1 <2 != 1.2.3 || >= 3", "3.0.0", True),
    ("1.1 - 2", "1.1.1", True),
    ("1.5.0 - 4.5", "3.7.0", True),
    ("1.1-3", "4.3.2", False),
    ("^1.1", "1.1.1", True),
    ("^1.1", "4.3.2", False),
    ("^1.x", "1.1.1", True),
    ("^2.x", "1.1.1", False),
    ("^1.x", "2.1.1", False),
    ("^1.x", "1.1.1-beta1", False),
    ("^1.1.2-alpha", "1.2.1-beta1", True),
    ("^1.2.x-alpha", "1.1.1-beta1", False),
    ("^0.0.1", "0.0.1", True),
    ("^0.0.1", "0.3.1", False),
    ("^0.0.1", "0.1.3", False),
    ("~*", "2.1.1", True),
    ("~1", "2.1.1", False),
    ("~1", "1.3.5", True),
    ("~1", "1.4", True),
    ("~1", "1.3.5-beta", False),
    ("~1.x", "2.1.1", False),
    ("~1.x", "1.3.5", True),
    ("~1.1", "1.1.1-alpha", False),
    ("~1.1-alpha", "1.1.1-beta", True),
    ("~1.1.1-beta", "1.1.1-alpha", False),
    ("~1.1.1-beta", "1.1.1", True),
    ("~1.2.3", "1.2.5", True),
    ("~1.2.3", "1.2.2", False),
    ("~1.2.3", "1.3.2", False),
    ("~1.1", "1.2.3", False),
    ("~1.3", "2.4.5", False),
    ("~1.3.6-alpha", "1.3.5-beta", False),
    ("~1.3.5-alpha", "1.3.5-beta", True),
    ("~1.3.5-beta", "1.3.5-alpha", False),
    ("^1.1.1-alpha", "1.1.1-beta", True),
    ("^1.1.1-beta", "1.1.1-alpha", False),
    # spec §3.3.4: partial versions
    ("1.2", "1.2.0", True),
    ("1.2", "1.2.99", True),
    ("1.2", "1.3.0", False),
    ("1.2", "1.1.9", False),
    ("1.2.x", "1.2.5", True),
    ("1.2.x", "v1.2.3", True),
    ("=1.2", "1.3.0", False),
    ("1", "1.0.0", True),
    ("1", "1.99.99", True),
    ("1", "2.0.0", False),
    ("1", "0.9.9", False),
    ("1.x", "1.5.0", True),
    ("X", "7.0.0", True),
    ("x.x.x", "0.0.0", True),
    (">1.2", "1.2.9", False),
    (">1.2", "1.3.0", True),
    (">1.2", "2.0.0", True),
    (">1", "1.9.9", False),
    (">1", "2.0.0", True),
    ("<=1.2", "1.2.99", True),
    ("<=1.2", "1.3.0", False),
    ("<=1.2", "0.0.1", True),
    ("<=1", "1.99.0", True),
    ("<=1", "2.0.0", False),
    ("<1.2", "1.1.99", True),
    ("<1.2", "1.2.0", False),
    (">=1.2", "1.2.0", True),
    (">=1.2", "1.1.99", False),
    ("!=1.2", "1.2.7", False),
    ("!=1.2", "1.3.0", True),
    ("!=1", "1.5.0", False),
    ("!=1", "2.0.0", True),
    ("!=1.2.3", "1.2.3", False),
    ("!=1.2.3", "1.2.4", True),
    ("!=1.2.3", "1.2.3+build", False),
    # tilde
    ("~1.2.3", "1.2.3", True),
    ("~1.2.3", "1.3.0", False),
    ("~>1.2.3", "1.2.9", True),
    ("~>1.2.3", "1.3.0", False),
    ("~1.2", "1.2.0", True),
    ("~1", "1.0.0", True),
    ("~1", "2.0.0", False),
    ("~0.0.0", "0.0.0", True),
    ("~0.0.0", "99.0.0", True),
    ("~*", "0.0.1", True),
    ("~0", "0.9.9", True),
    ("~0", "1.0.0", False),
    ("~0.0", "0.0.9", True),
    ("~0.0", "0.1.0", False),
    ("~0.0.1", "0.0.5", True),
    ("~0.0.1", "0.1.0", False),
    ("~0.0.1", "0.0.0", False),
    # caret
    ("^1.2.3", "1.2.3", True),
    ("^1.2.3", "1.99.0", True),
    ("^1.2.3", "2.0.0", False),
    ("^0.2.3", "0.2.3", True),
    ("^0.2.3", "0.2.99", True),
    ("^0.2.3", "0.3.0", False),
    ("^0.2.3", "0.2.2", False),
    ("^0.0.3", "0.0.2", False),
    ("^0.0", "0.0.0", True),
    ("^0.0", "0.0.99", True),
    ("^0.0", "0.1.0", False),
    ("^0.0.x", "0.0.7", True),
    ("^0.0.x", "0.1.0", False),
    ("^0", "0.0.0", True),
    ("^0", "0.99.0", True),
    ("^0", "1.0.0", False),
    ("^0.x", "0.5.0", True),
    ("^0.x", "1.0.0", False),
    ("^1.x", "1.0.0", True),
    ("^1.x", "1.99.0", True),
    ("^1.x", "2.0.0", False),
    ("^1.x", "0.9.0", False),
    # wildcard major: base 0.0.0 with nothing given, kept as Masterminds has it (issue #317)
    ("^*", "0.0.0", True),
    ("^*", "0.0.1", False),
    ("^*", "1.0.0", False),
    (">*", "0.0.0", False),
    (">*", "0.0.1", True),
    ("<*", "0.0.0", False),
    ("<=*", "0.0.9", True),
    ("<=*", "0.1.0", False),
    ("!=*", "0.0.0", False),
    ("!=*", "1.0.0", True),
    (">=*", "0.0.0", True),
    ("=*", "3.0.0", True),
    ("x.2.3", "9.9.9", True),
    # segments after a wildcard are ignored
    ("1.x.3", "1.5.0", True),
    ("1.x.3", "2.0.0", False),
    ("1.x.|", "1.5.0", True),
    # spelling: v prefix, aliases, whitespace, leading zeros, metadata
    ("v1.2.3", "1.2.3", True),
    ("=v1.2.3", "v1.2.3", True),
    (">= v1.2", "1.2.0", True),
    (">=   1.2.3", "1.2.3", True),
    ("  >=1.2.3  ", "1.2.3", True),
    ("=>1.2", "1.2.0", True),
    ("=<1.2", "1.2.9", True),
    ("=<1.2", "1.3.0", False),
    ("01.2.3", "1.2.3", True),
    ("1.2.3+meta", "1.2.3", True),
    ("1.2+meta", "1.2.5", True),
    (">=1.0.0\t<2.0.0", "1.5.0", True),
    (">=1.0.0,<2.0.0", "2.0.0", False),
    (">=1.0.0 ,<2.0.0", "1.0.0", True),
    ("1.2.3 1.2.3", "1.2.3", True),
    ("1.2.3||1.2.4", "1.2.4", True),
    ("1.2.3||1.2.4", "1.2.5", False),
    # hyphen ranges: >= A, <= B (a partial B takes every version it names)
    ("1.2 - 1.4.5", "1.2.0", True),
    ("1.2 - 1.4.5", "1.4.5", True),
    ("1.2 - 1.4.5", "1.4.6", False),
    ("1.2 - 1.4.5", "1.1.9", False),
    ("1.2.3 - 2.3", "2.3.99", True),
    ("1.2.3 - 2.3", "2.4.0", False),
    ("1.2.3 - 2.3", "1.2.2", False),
    ("1.2.3 - 2", "2.9.9", True),
    ("1.2.3 - 2", "3.0.0", False),
    ("v1.0.0 - v2.0.0", "2.0.0", True),
    ("1.0.0 - 2.0.0 || 3.0.0 - 4.0.0", "3.5.0", True),
    ("1.0.0 - 2.0.0 || 3.0.0 - 4.0.0", "2.5.0", False),
    ("1.0.0 - 2.0.0 3.0.0 - 4.0.0", "3.5.0", False),
    ("2 - 3, 4.0.0 - 5.1", "3.0.0", False),
    ("3 - 4 || => 3.0, < 4", "4.5.0", True),
    # ranges are rewritten before the `||` split: `1||2 - 3` is `>= 1 || 2, <= 3`
    ("1||2 - 3", "1.0.0", True),
    ("1||2 - 3", "5.0.0", True),
    # prereleases: admitted only by a group with a prerelease term (v3.4.0), full precedence
    (">=1.2.1-0", "1.2.1-rc.1", True),
    (">=1.2.1-0", "1.3.0-beta", True),
    (">=1.2.1-0", "2.0.0", True),
    (">=1.2.1-0", "1.2.0", False),
    (">=1.2.1", "1.3.0-beta", False),
    ("<2.0.0", "1.0.0-alpha", False),
    ("<2.0.0-rc.1", "1.0.0-alpha", True),
    (">1.0.0-beta.1 <2", "1.5.0-beta", True),
    (">1.0.0-beta.1 <2", "1.0.0-beta.2", True),
    (">1.0.0-beta.1 <2", "2.0.0-beta", True),
    (">1.0.0-beta.1 <2", "1.0.0-beta.1", False),
    (">1.0.0-beta.1 <2 || >3", "4.5.0-beta", False),
    (">1.0.0-beta.1 <2 || >3", "4.5.0", True),
    (">1.0.0-beta.1 <2 || >3", "3.5.0", False),
    ("1.0.0-alpha.1 - 1.1.0", "1.0.0-alpha.2", True),
    ("1.0.0-alpha.1 - 1.1.0", "1.1.0", True),
    ("1.0.0-alpha.1 - 1.1.0", "1.1.1-alpha", False),
    (">=1.0.0 <2.0.0-0", "1.9.0-beta", True),
    (">=1.0.0 <2.0.0-0", "2.0.0-alpha", False),
    ("~1.2.3-0", "1.2.9-beta", True),
    ("~1.2.3-0", "1.3.0-beta", False),
    ("^1.0.0-0", "1.9.0-rc.1", True),
    ("^1.0.0-0", "2.0.0-rc.1", False),
    ("1.2.3-beta", "1.2.3-beta", True),
    ("1.2.3-beta", "1.2.3-beta+meta", True),
    ("1.2.3-beta", "1.2.3", False),
    ("1.2.3-beta", "1.2.3-rc", False),
    ("!=1.2.3-beta", "1.2.3-alpha", True),
    ("!=1.2.3-beta", "1.2.3-beta", False),
    (">=1.0.0-BETA", "1.0.0-alpha", True),
]


@pytest.mark.parametrize(("constraint", "text", "expected"), ALLOWS)
def test_constraint_allows(constraint: str, text: str, expected: bool) -> None:
    assert parse_constraint(constraint).allows(version(text)) is expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "||",
        "1 ||",
        "|| 1",
        "1 || || 2",
        ">>1.2",
        "==1.2",
        "~=1.2",
        "<>1.2",
        ">=1.0.0\x0b<2.0.0",
        ">=1.0.0\u00a0<2.0.0",
        "foo",
        ">= bar",
        "BAR >= 1.2.3",
        "V1.2.3",
        "1.2.3.4",
        "12.3.4.1234",
        "12.3.34~ 1.2.3",
        "1,,2",
        ",1",
        "1,",
        ">1.2.3<2",
        "~ >1.2",
        "> =1.2",
        "~",
        "^",
        ">=",
        "1.2.3-",
        "1.2.3+",
        "1.2.3-a..b",
        "1..2",
        ">=1.2.3-01",
        "^1.2.x-01",
        "1.2.3 -2",
        "1 - ",
        "- 1",
        "=1.2.3 - 2",
        ">=1 1 - 2",
        "1|2",
        "1 |",
        "x|",
        "1x",
        "1.2.3 !",
        "99999999999999999999",
        "1.99999999999999999999.x",
        "1" * 1001,
        "1 " * 500 + " ",
    ],
)
def test_bad_constraints_raise(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^improper constraint: "):
        parse_constraint(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (">>1.2", "improper constraint: >>1.2"),
        ("", 'improper constraint: ""'),
        (">=1.0 || >>2", "improper constraint: >>2"),
        ("1 ||", "improper constraint: 1 ||"),
        ("^1.2.3-01", "improper constraint: ^1.2.3-01"),
        (">= 1.0,\n  bogus", "improper constraint: >= 1.0, bogus"),
        ("1 " * 501, "improper constraint: longer than 1000 characters"),
    ],
)
def test_bad_constraint_messages(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_constraint(text)
    assert str(caught.value) == message


def test_long_constraints_up_to_the_limit_parse() -> None:
    assert parse_constraint("1 " * 500).allows(version("1.5.0"))


def test_constraint_keeps_its_text() -> None:
    assert parse_constraint(">= 1.2, < 2").text == ">= 1.2, < 2"


# --- the resource's prerelease gate (§3.3.3) -----------------------------------------------------


@pytest.mark.parametrize(
    ("prerelease", "pre_releases", "prefixes", "expected"),
    [
        ("", False, (), True),
        ("", True, ("build",), True),
        ("rc.1", False, (), False),
        ("beta", False, ("beta",), False),
        ("build.3", False, ("build",), False),
        ("alpha", True, (), True),
        ("alpha1", True, (), True),
        ("alphabet", True, (), True),
        ("beta.2", True, (), True),
        ("rc", True, (), True),
        ("rcfoo", True, (), True),
        ("rc.1", True, (), True),
        ("build.3", True, (), False),
        ("build.3", True, ("build",), True),
        ("dev.1", True, ("dev", "build"), True),
        ("preview", True, ("pre",), True),
        ("rc.1-bar", True, (), False),
        ("alpha.1-bar", True, (), False),
        ("rc.1-bar", True, ("build",), True),
        ("alpha.1-bar", True, ("x",), True),
        ("foo-bar", True, ("foo",), True),
        ("foo", True, (), False),
        ("alpine", True, (), False),
        ("alpine", True, ("build",), False),
        ("RC.1", True, (), False),
        ("1", True, (), False),
        ("0", True, (), False),
    ],
)
def test_prerelease_accepted(
    prerelease: str, pre_releases: bool, prefixes: tuple[str, ...], expected: bool
) -> None:
    accepted = prerelease_accepted(prerelease, pre_releases=pre_releases, prefixes=prefixes)
    assert accepted is expected


# --- alias dedup specificity (§3.3.6) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "dots"),
    [
        ("1", 0),
        ("v1", 0),
        ("2.1", 1),
        ("3.0.0", 2),
        ("1.2.3", 2),
        ("v1.2.3", 2),
        ("1.0.0-rc", 2),
        ("1.0.0-rc1", 2),
        ("1.0.0-rc.1", 3),
        ("1.2.3+build.5", 3),
    ],
)
def test_specificity(text: str, dots: int) -> None:
    assert specificity(text) == dots


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "1.2.30000000000000000000000000000",
            "version segment 30000000000000000000000000000 is too large",
        ),
        ("18446744073709551616.0.0", "version segment 18446744073709551616 is too large"),
        ("v1.99999999999999999999", "is too large (the largest is 18446744073709551615)"),
        ("1." + "9" * 5000, "version segment of 5000 digits is too large"),
        ("1.0.0-rc.01", "version segment starts with 0"),
        ("1.0.0-00", "version segment starts with 0"),
        ("1.0.0-a..b", None),
        ("1.0.0+", None),
        ("1.0.0-", None),
        ("V1.0.0", None),
        ("1.2.3.4", None),
        ("hoogily-boogily", None),
        ("", None),
    ],
)
def test_why_not_a_version_names_what_is_wrong(text: str, reason: str | None) -> None:
    assert parse_version(text) is None
    found = why_not_a_version(text)
    if reason is None:
        assert found is None
    else:
        assert found is not None
        assert reason in found

"""regwatch.gofilepath against Go's own tables for filepath.Match, Clean, Join and Glob."""

from __future__ import annotations

from pathlib import Path

import pytest

from regwatch.errors import ConfigError
from regwatch.gofilepath import clean, escape, glob, join, match

BAD = "bad pattern"

# Go's path/filepath match_test.go on Unix, plus the differences from Python's fnmatch.
MATCHES: list[tuple[str, str, bool | str]] = [
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", False),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "α", True),
    ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False),
    ("a*b", "a/b", False),
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "x", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("[\\-x]", "x", True),
    ("[\\-x]", "-", True),
    ("[\\-x]", "a", False),
    ("[]a]", "]", BAD),
    ("[-]", "-", BAD),
    ("[x-]", "x", BAD),
    ("[x-]", "-", BAD),
    ("[x-]", "z", BAD),
    ("[-x]", "x", BAD),
    ("[-x]", "-", BAD),
    ("[-x]", "a", BAD),
    ("\\", "a", BAD),
    ("[a-b-c]", "a", BAD),
    ("[", "a", BAD),
    ("[^", "a", BAD),
    ("[^bc", "a", BAD),
    ("a[", "a", BAD),
    ("a[", "ab", BAD),
    ("a[", "x", BAD),
    ("a/b[", "x", BAD),
    ("*x", "xxx", True),
    # where Python's glob differs: `!` is ordinary, `^` negates, dotfiles match `*`
    ("[!a]", "b", False),
    ("[!a]", "!", True),
    ("[^a]", "b", True),
    ("[^a]", "a", False),
    ("image-[^0-9].tar", "image-x.tar", True),
    ("image-[^0-9].tar", "image-1.tar", False),
    ("*", ".hidden", True),
    ("\\[x]", "[x]", True),
    ("\\?", "?", True),
    ("\\?", "a", False),
    ("a*", "b[", False),
    ("x*[", "y", BAD),
]


@pytest.mark.parametrize(("pattern", "name", "expected"), MATCHES)
def test_match_follows_go(pattern: str, name: str, expected: bool | str) -> None:
    if expected == BAD:
        with pytest.raises(ConfigError, match="syntax error in pattern"):
            match(pattern, name)
    else:
        assert match(pattern, name) is expected


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [
        ("abc", "abc"),
        ("abc/def", "abc/def"),
        (".", "."),
        ("..", ".."),
        ("../..", "../.."),
        ("../../abc", "../../abc"),
        ("/abc", "/abc"),
        ("/", "/"),
        ("", "."),
        ("abc/", "abc"),
        ("./", "."),
        ("../", ".."),
        ("/abc/", "/abc"),
        ("abc//def//ghi", "abc/def/ghi"),
        ("//abc", "/abc"),
        ("///abc", "/abc"),
        ("//abc//", "/abc"),
        ("abc/./def", "abc/def"),
        ("/./abc/def", "/abc/def"),
        ("abc/.", "abc"),
        ("abc/def/ghi/../jkl", "abc/def/jkl"),
        ("abc/def/../ghi/../jkl", "abc/jkl"),
        ("abc/def/..", "abc"),
        ("abc/def/../..", "."),
        ("/abc/def/../..", "/"),
        ("abc/def/../../..", ".."),
        ("/abc/def/../../..", "/"),
        ("abc/def/../../../ghi/jkl/../../../mno", "../../mno"),
        ("/../abc", "/abc"),
        ("abc/./../def", "def"),
        ("abc//./../def", "def"),
        ("abc/../../././../def", "../../def"),
    ],
)
def test_clean_follows_go(path: str, cleaned: str) -> None:
    assert clean(path) == cleaned


@pytest.mark.parametrize(
    ("elements", "joined"),
    [
        (("a", "b", "c"), "a/b/c"),
        (("a", "b/c"), "a/b/c"),
        (("a/b", "c"), "a/b/c"),
        (("a/b", "/c"), "a/b/c"),
        (("/src", "/image.tar"), "/src/image.tar"),
        (("/src", "//etc/passwd"), "/src/etc/passwd"),
        (("a/b", "../../../xyz"), "../xyz"),
        (("/src", "../image.tar"), "/image.tar"),
        (("/src", "img/../../x"), "/x"),
        (("/", "a"), "/a"),
        (("", ""), ""),
        (("", "a"), "a"),
        (("a", ""), "a"),
        (("a", "", "b"), "a/b"),
    ],
)
def test_join_follows_go(elements: tuple[str, ...], joined: str) -> None:
    assert join(*elements) == joined


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in ("a.tar", "b.tar", "!x.tar", ".hidden.tar", "img-1", "img-x", "[lit]"):
        (tmp_path / name).write_text(name)
    (tmp_path / "dir-a").mkdir()
    (tmp_path / "dir-a" / "image.tar").write_text("a")
    (tmp_path / "dir-b").mkdir()
    (tmp_path / "dir-b" / "image.tar").write_text("b")
    return tmp_path


@pytest.mark.parametrize(
    ("pattern", "found"),
    [
        ("*.tar", ["!x.tar", ".hidden.tar", "a.tar", "b.tar"]),
        ("[^a].tar", ["b.tar"]),
        ("[!a].tar", ["a.tar"]),  # Python would negate and find b.tar
        ("!x.tar", ["!x.tar"]),
        ("img-[^0-9]", ["img-x"]),
        ("\\[lit]", ["[lit]"]),
        ("[lit]", []),
        ("dir-*/image.tar", ["dir-a/image.tar", "dir-b/image.tar"]),
        ("dir-[^a]/*", ["dir-b/image.tar"]),
        ("missing/*", []),
        ("a.tar/*", []),
        ("a.tar", ["a.tar"]),
        ("nothing", []),
    ],
)
def test_glob_follows_go(tree: Path, pattern: str, found: list[str]) -> None:
    root = escape(str(tree))
    assert glob(join(root, pattern)) == [str(tree / name) for name in found]


def test_glob_reports_a_bad_pattern_even_when_nothing_could_match(tree: Path) -> None:
    with pytest.raises(ConfigError, match="syntax error in pattern"):
        glob(join(str(tree), "missing/[x"))


def test_escape_makes_a_directory_with_special_characters_literal(tmp_path: Path) -> None:
    odd = tmp_path / "build[1]*?\\"
    odd.mkdir()
    (odd / "image.tar").write_text("x")
    assert glob(join(escape(str(odd)), "*.tar")) == [str(odd / "image.tar")]
    assert glob(join(escape(str(odd)), "image.tar")) == [str(odd / "image.tar")]

"""Patterns as Go's regexp reads them: RE2 syntax and semantics, refusals, linear time."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from regwatch.errors import ConfigError
from regwatch.patterns import compile_pattern


@pytest.mark.parametrize(
    ("pattern", "text", "found"),
    [
        # POSIX classes inside brackets (Python's re read `[[:digit:]]` as a set and `]`).
        ("[[:digit:]]", "v1", True),
        ("[[:digit:]]", "latest", False),
        ("^[[:alpha:]]+$", "stable", True),
        ("[[:^digit:]]", "123", False),
        # Unicode classes.
        (r"\pN", "build-7", True),
        (r"\pN", "build", False),
        (r"^\p{Greek}+$", "αβγ", True),
        (r"\PL", "abc", False),
        # \z is the end of the text; $ is too, without (?m) (never "before a final newline").
        (r"a\z", "ba", True),
        (r"a\z", "ab", False),
        ("a$", "a\n", False),
        ("(?m)a$", "a\nb", True),
        # Flags.
        ("(?i)LATEST", "latest", True),
        ("LATEST", "latest", False),
        ("(?s)a.b", "a\nb", True),
        ("a.b", "a\nb", False),
        # Unanchored search, as MatchString.
        ("gr(a|e)y", "x-grey-1", True),
        ("^gr(a|e)y$", "x-grey-1", False),
        # Characters, not bytes; literal sections; named groups in both spellings.
        ("^.$", "é", True),
        (r"\Q1.0\E", "v1.0", True),
        (r"\Q1.0\E", "v1x0", False),
        (r"\Q\C\E", "a\\Cb", True),
        ("(?P<major>[0-9]+)", "v3", True),
        ("(?<major>[0-9]+)", "v3", True),
        # A lone surrogate from JSON text is U+FFFD, as Go's decoder makes it.
        (r"\x{FFFD}", "a\ud800b", True),
    ],
)
def test_matching_follows_go(pattern: str, text: str, found: bool) -> None:
    assert compile_pattern(pattern, "tag_regex").found_in(text) is found


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(a)\1", r"invalid escape sequence: \1"),
        (r"(?P<x>a)(?P=x)", "invalid perl operator: (?P"),
        ("(?<=a)b", "invalid perl operator: (?<="),
        ("(?<!a)b", "invalid perl operator: (?<!"),
        ("a(?=b)", "invalid perl operator: (?="),
        ("a(?!b)", "invalid perl operator: (?!"),
        ("(?>a)", "invalid perl operator: (?>"),
        ("a++", "bad repetition operator: ++"),
        (r"a\Z", r"invalid escape sequence: \Z"),
        (r"a\C", r"invalid escape sequence: \C"),
        (r"[\C]", r"invalid escape sequence: \C"),
        ("(", "missing ): ("),
        ("a**", "bad repetition operator: **"),
        ("x{1001}", "invalid repetition size: {1001}"),
        ("[z-a]", "invalid character class range: z-a"),
        ("a\ud800", "invalid UTF-8"),
    ],
)
def test_what_go_refuses_is_a_config_error(pattern: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_pattern(pattern, "label_regex")
    message = str(caught.value)
    assert message.startswith("invalid label_regex: "), message
    assert message.endswith(reason), message


@pytest.mark.parametrize(
    ("pattern", "shown"),
    [
        ("\n(", r'"\x0a(": missing ): \x0a('),
        ("(\x00", r'"(\x00": missing ): (\x00'),
        ("(\u2028", r'"(\u2028": missing ): (\u2028'),
        ("(\x1b31m", r'"(\x1b31m": missing ): (\x1b31m'),
        ("(" * 300, '"' + "(" * 200 + '…": missing '),
    ],
)
def test_a_refused_pattern_is_shown_escaped_on_one_line(pattern: str, shown: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_pattern(pattern, "annotation_regex")
    message = str(caught.value)
    assert message.startswith(f"invalid annotation_regex: {shown}"), message
    assert message.isprintable(), message
    assert len(message) < 1000


@pytest.mark.parametrize(
    "pattern", ["(a+)+$", "(a|a)*$", "(a*)*b", "^(a|aa)+$", "(.*a){20}", "(x+x+)+y"]
)
def test_catastrophic_patterns_run_in_linear_time(pattern: str) -> None:
    compiled = compile_pattern(pattern, "tag_regex")
    tags = ["a" * 128 + "!", "x" * 128, "a" * 64 + "b" * 64, "1.0.0", "latest"] * 20
    started = time.monotonic()
    for tag in tags:
        compiled.found_in(tag)
    assert time.monotonic() - started < 1.0


def test_refusing_a_pattern_writes_nothing_to_stderr() -> None:
    """RE2 logs from C++ straight to fd 2 unless told not to: watch the real descriptor."""
    script = (
        "from regwatch.patterns import compile_pattern\n"
        "from regwatch.errors import ConfigError\n"
        "for p in ['(', 'a**', '(?<=a)b', r'(a)\\1', 'x{1001}', '[z-a]', r'\\Z']:\n"
        "    try:\n"
        "        compile_pattern(p, 'tag_regex')\n"
        "    except ConfigError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit(p)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")

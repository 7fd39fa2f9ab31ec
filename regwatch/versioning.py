"""Tags as versions: v-prefix, partial "1.2", semver precedence and Masterminds constraints."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TypeAlias

from regwatch.errors import ConfigError

# Masterminds parses numbers with strconv.ParseUint(…, 10, 64): a bigger number is not a
# version at all, and a bigger prerelease identifier is compared as text, not as a number.
_UINT64_MAX = 2**64 - 1
_DIGITS = re.compile(r"[0-9]+")
_IDENTIFIERS = re.compile(r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*")

# One prerelease identifier as a sort key: numbers (0, value, "") sort before text (1, 0, text),
# text compares byte-wise (every identifier is ASCII), and a tuple that is a prefix of a
# longer one sorts first, which is SemVer 2.0 §11.4 exactly.
_IdentifierKey: TypeAlias = tuple[int, int, str]
PrecedenceKey: TypeAlias = tuple[int, int, int, int, tuple[_IdentifierKey, ...]]


@dataclass(frozen=True)
class Version:
    """A parsed tag. `==` compares every field; `<`, `<=`, `>`, `>=` compare by precedence.

    Precedence ignores `metadata` and `original`, so `1.2` and `v1.2.0+build` are neither
    `<` nor `>` each other but are not `==` either: ask `same_precedence` for that.
    """

    major: int
    minor: int
    patch: int
    prerelease: str
    metadata: str
    original: str

    @property
    def is_prerelease(self) -> bool:
        return self.prerelease != ""

    @cached_property
    def precedence_key(self) -> PrecedenceKey:
        """A tuple ordered as SemVer 2.0 §11 precedence (a release outranks its prereleases)."""
        if not self.prerelease:
            return (self.major, self.minor, self.patch, 1, ())
        identifiers = tuple(_identifier_key(part) for part in self.prerelease.split("."))
        return (self.major, self.minor, self.patch, 0, identifiers)

    def same_precedence(self, other: Version) -> bool:
        return self.precedence_key == other.precedence_key

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.precedence_key < other.precedence_key

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.precedence_key <= other.precedence_key

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.precedence_key > other.precedence_key

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.precedence_key >= other.precedence_key


def _identifier_key(identifier: str) -> _IdentifierKey:
    number = _uint64(identifier)
    if number is None:
        return (1, 0, identifier)
    return (0, number, "")


def _uint64(digits: str) -> int | None:
    """The value of an ASCII decimal that fits 64 bits unsigned, else None."""
    if not _DIGITS.fullmatch(digits) or len(digits.lstrip("0")) > 20:
        return None  # checked before int(): Python refuses to convert very long strings
    value = int(digits)
    return value if value <= _UINT64_MAX else None


def compare(a: Version, b: Version) -> int:
    """-1, 0 or 1 as `a` has lower, the same or higher precedence than `b`."""
    return (a.precedence_key > b.precedence_key) - (a.precedence_key < b.precedence_key)


def parse_version(text: str) -> Version | None:
    """Masterminds NewVersion (coercing): §3.3.5. None when the text is not a version.

    Shape: optional lower-case `v`, one to three dot-separated numbers (leading zeros allowed,
    missing ones are 0), then optional `-prerelease` and `+metadata`, each dot-separated
    non-empty `[0-9A-Za-z-]` identifiers. A numeric prerelease identifier may not start with 0.
    """
    rest = text.removeprefix("v")
    rest, plus, metadata = rest.partition("+")
    if plus and not _IDENTIFIERS.fullmatch(metadata):
        return None
    core, dash, prerelease = rest.partition("-")
    if dash and not _valid_prerelease(prerelease):
        return None
    parts = core.split(".")
    numbers = [number for number in map(_uint64, parts) if number is not None]
    if len(parts) > 3 or len(numbers) != len(parts):
        return None
    numbers += [0] * (3 - len(numbers))
    return Version(numbers[0], numbers[1], numbers[2], prerelease, metadata, text)


_SHAPE = re.compile(
    rf"v?([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?"
    rf"(?:-({_IDENTIFIERS.pattern}))?(?:\+{_IDENTIFIERS.pattern})?"
)
_SHOWN_DIGITS = 40


def why_not_a_version(text: str) -> str | None:
    """What is wrong with a text that looks like a version but is none (Masterminds' errors).

    None when the text does not even have a version's shape: Masterminds' `ErrInvalidSemVer`.
    """
    match = _SHAPE.fullmatch(text)
    if match is None:
        return None
    for segment in match.groups()[:3]:
        if segment is not None and _uint64(segment) is None:
            shown = segment if len(segment) <= _SHOWN_DIGITS else f"of {len(segment)} digits"
            return f"version segment {shown} is too large (the largest is {_UINT64_MAX})"
    if match[4] is not None and not _valid_prerelease(match[4]):
        return "version segment starts with 0"
    return None


def _valid_prerelease(prerelease: str) -> bool:
    if not _IDENTIFIERS.fullmatch(prerelease):
        return False
    return not any(
        len(part) > 1 and part.startswith("0") and _DIGITS.fullmatch(part)
        for part in prerelease.split(".")
    )


def prerelease_accepted(prerelease: str, *, pre_releases: bool, prefixes: Sequence[str]) -> bool:
    """The resource's prerelease gate §3.3.3 (empty prerelease => True).

    With no configured prefixes a `-` in the prerelease means it carries a variant
    (`rc.1-bar`) and is refused; the prefix test is a plain string prefix (`rcfoo` passes).
    """
    if not prerelease:
        return True
    if not pre_releases:
        return False
    if not prefixes and "-" in prerelease:
        return False
    return prerelease.startswith(("alpha", "beta", "rc", *prefixes))


def specificity(version_string: str) -> int:
    """Number of '.' in the string (the alias-dedup rule §3.3.6), ignoring a leading v.

    Dots in the prerelease and metadata count too; a `v` holds no dot, so it cannot matter.
    """
    return version_string.count(".")


# ---------------------------------------------------------------------------------------------
# Constraints: Masterminds/semver v3.4 `NewConstraint` + `Check`, rebuilt from its documented
# and tested behaviour. A term is an operator and a version that may stop early or hit a
# wildcard (`x`, `X`, `*`); `given` counts the numbers written before that (0-3), and the
# missing ones read as 0 in `base`. Segments after a wildcard are ignored (`1.x.3` is `1.x`).
#
#   term                       admits (for versions without a prerelease)
#   1.2.3  =1.2.3              precedence-equal to 1.2.3 (metadata ignored)
#   1.2  1.2.x  =1.2           >=1.2.0 <1.3.0             (partial `=` is a tilde)
#   1  1.x  =1                 >=1.0.0 <2.0.0
#   *  x  =*  ~*  ~0.0.0       anything
#   !=1.2.3                    everything but 1.2.3
#   !=1.2   !=1.2.x            everything but 1.2.*       (`!=1.2-rc` drops only 1.2.*-rc)
#   !=1   !=1.x                everything but 1.*.*
#   >1.2.3                     >1.2.3
#   >1.2                       >=1.3.0                    (a higher minor or major)
#   >1                         >=2.0.0
#   <1.2  <1.2.x               <1.2.0                     (`<` just fills zeros)
#   >=1.2                      >=1.2.0
#   <=1.2.3                    <=1.2.3
#   <=1.2                      <1.3.0                     (every 1.2.*, no lower bound)
#   <=1                        <2.0.0
#   ~1.2.3  ~>1.2.3            >=1.2.3 <1.3.0
#   ~1.2                       >=1.2.0 <1.3.0
#   ~1                         >=1.0.0 <2.0.0
#   ~0                         >=0.0.0 <1.0.0             (only ~0.0.0 and ~* are "anything")
#   ^1.2.3  ^1.2  ^1  ^1.x     >=base <2.0.0
#   ^0.2.3  ^0.2               >=base <0.3.0
#   ^0.0.3                     =0.0.3
#   ^0.0  ^0.0.x               >=0.0.0 <0.1.0
#   ^0  ^0.x                   >=0.0.0 <1.0.0
#   A - B                      >=A <=B, so a partial B takes all of it: `1.2.3 - 2.3` is
#                              >=1.2.3 <2.4.0 (README: "2.3.4 - 4.5" is ">= 2.3.4, <= 4.5")
#
# Wildcard-major quirks, kept for compatibility: `x`/`*` become base 0.0.0 with given 0, so
# `^*` admits only 0.0.0 (Masterminds issue #317, open), `>*` is >0.0.0, `<*` admits no
# release, `<=*` is <0.1.0 and `!=*` is !=0.0.0.
#
# Prereleases (v3.4.0, PR #267): a version with a prerelease satisfies an AND group only if
# some term of that group has a prerelease itself; that does not carry across `||`. Past the
# gate every comparison is full precedence, not limited to the same major.minor.patch as in
# npm (CHANGELOG 3.0.0: "Prereleases here look over multiple versions"), so `>=1.2.1-0`
# admits 1.2.1-rc.1 and 1.3.0-beta.
# ---------------------------------------------------------------------------------------------

_SPACES = "\t\n\f\r "  # Go's \s: no vertical tab
_WS = f"[{_SPACES}]"
_SEGMENT = r"[0-9xX*|]+"  # Masterminds' class [0-9|x|X|\*] admits "|"; such terms fail later
_EXTRA = rf"(?:-{_IDENTIFIERS.pattern})?(?:\+{_IDENTIFIERS.pattern})?"
_CV_TEXT = rf"v?{_SEGMENT}(?:\.{_SEGMENT}){{0,2}}{_EXTRA}"
_HYPHEN_RANGE = re.compile(rf"{_WS}*({_CV_TEXT}){_WS}+-{_WS}+({_CV_TEXT}){_WS}*")
_TERM = re.compile(
    rf"(?P<op>!=|>=|=>|<=|=<|~>|>|<|=|~|\^)?{_WS}*"
    rf"v?(?P<major>{_SEGMENT})(?:\.(?P<minor>{_SEGMENT}))?(?:\.(?P<patch>{_SEGMENT}))?"
    rf"(?:-(?P<pre>{_IDENTIFIERS.pattern}))?(?:\+(?P<meta>{_IDENTIFIERS.pattern}))?"
)
# Go's RE2 finds hyphen ranges in linear time, Python's backtracking `re` in quadratic time on
# long runs of version characters; no real constraint comes near this many characters.
_MAX_CONSTRAINT_LENGTH = 1000
_SEPARATOR = re.compile(rf"{_WS}*,{_WS}*|{_WS}+")
_WILDCARDS = frozenset({"x", "X", "*"})
_OPERATOR_NAMES = {"": "=", "=": "=", "=>": ">=", "=<": "<=", "~>": "~"}


@dataclass(frozen=True)
class _Term:
    operator: str
    base: Version
    given: int


@dataclass(frozen=True)
class _Group:
    terms: tuple[_Term, ...]
    admits_prereleases: bool

    def allows(self, version: Version) -> bool:
        if version.is_prerelease and not self.admits_prereleases:
            return False
        return all(_CHECKS[term.operator](version, term) for term in self.terms)


@dataclass(frozen=True)
class Constraint:
    """A parsed `semver_constraint`: OR groups of AND-ed terms."""

    text: str
    _groups: tuple[_Group, ...] = field(repr=False)

    def allows(self, version: Version) -> bool:
        return any(group.allows(version) for group in self._groups)


def parse_constraint(text: str) -> Constraint:
    """Raises ConfigError(f'improper constraint: {text}') style messages on bad input.

    Hyphen ranges are rewritten over the whole text before it is split at `||`, as
    Masterminds does, so their odd corners (`1||2 - 3` is `>=1 || 2 <=3`) match too.
    """
    if len(text) > _MAX_CONSTRAINT_LENGTH:
        raise ConfigError(f"improper constraint: longer than {_MAX_CONSTRAINT_LENGTH} characters")
    rewritten = _HYPHEN_RANGE.sub(lambda m: f">= {m[1]}, <= {m[2]} ", text)
    groups = tuple(_parse_group(part, text) for part in rewritten.split("||"))
    return Constraint(text, groups)


def _parse_group(text: str, whole: str) -> _Group:
    terms: list[_Term] = []
    position = _skip_space(text, 0)
    while True:
        match = _TERM.match(text, position)
        if match is None:
            raise _improper(text.strip() or whole.strip())
        terms.append(_parse_term(match))
        position = match.end()
        if _skip_space(text, position) == len(text):
            break
        separator = _SEPARATOR.match(text, position)
        if separator is None:
            raise _improper(text.strip())
        position = separator.end()
    return _Group(tuple(terms), any(term.base.is_prerelease for term in terms))


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in _SPACES:
        position += 1
    return position


def _parse_term(match: re.Match[str]) -> _Term:
    segments = [s for s in (match["major"], match["minor"], match["patch"]) if s is not None]
    given = next((i for i, s in enumerate(segments) if s in _WILDCARDS), len(segments))
    numbers = [*segments[:given], *["0"] * (3 - given)]
    version_text = ".".join(numbers)
    if match["pre"] is not None:
        version_text += f"-{match['pre']}"
    if given == 3 and match["meta"] is not None:
        version_text += f"+{match['meta']}"
    base = parse_version(version_text)
    if base is None:
        raise _improper(match[0].strip())
    return _Term(_OPERATOR_NAMES.get(match["op"] or "", match["op"] or ""), base, given)


def _improper(offending: str) -> ConfigError:
    shown = " ".join(offending.split()) or '""'
    return ConfigError(f"improper constraint: {shown}")


def _equal(version: Version, term: _Term) -> bool:
    if term.given < 3:
        return _tilde(version, term)
    return version.same_precedence(term.base)


def _not_equal(version: Version, term: _Term) -> bool:
    base = term.base
    if term.given == 1:
        return version.major != base.major
    if term.given == 2:
        return (version.major, version.minor, version.prerelease) != (
            base.major,
            base.minor,
            base.prerelease,
        )
    return not version.same_precedence(base)


def _greater(version: Version, term: _Term) -> bool:
    base = term.base
    if term.given == 1:
        return version.major > base.major
    if term.given == 2:
        return (version.major, version.minor) > (base.major, base.minor)
    return version > base


def _less(version: Version, term: _Term) -> bool:
    return version < term.base


def _greater_equal(version: Version, term: _Term) -> bool:
    return version >= term.base


def _less_equal(version: Version, term: _Term) -> bool:
    base = term.base
    if term.given == 3:
        return version <= base
    if term.given == 1:
        return version.major <= base.major
    return (version.major, version.minor) <= (base.major, base.minor)


def _tilde(version: Version, term: _Term) -> bool:
    base = term.base
    if version < base:
        return False
    if term.given in (0, 3) and (base.major, base.minor, base.patch) == (0, 0, 0):
        return True
    if version.major != base.major:
        return False
    return term.given == 1 or version.minor == base.minor


def _caret(version: Version, term: _Term) -> bool:
    base = term.base
    if version < base:
        return False
    if base.major > 0 or term.given == 1:
        return version.major == base.major
    if base.minor > 0 or term.given == 2:
        return (version.major, version.minor) == (0, base.minor)
    return (version.major, version.minor, version.patch) == (0, 0, base.patch)


_CHECKS: dict[str, Callable[[Version, _Term], bool]] = {
    "=": _equal,
    "!=": _not_equal,
    ">": _greater,
    "<": _less,
    ">=": _greater_equal,
    "<=": _less_equal,
    "~": _tilde,
    "^": _caret,
}

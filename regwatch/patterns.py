"""Regular expressions as Go's `regexp` reads them: RE2 syntax, linear time, unanchored search.

The spec says `tag_regex`, `label_regex` and `annotation_regex` are RE2, and a pattern comes
from a pipeline author, so it may be anything: RE2 itself compiles them (no backtracking, so no
pattern can make matching slow). Go's own parser differs from RE2's in one place we follow: it
refuses `\\C` (any byte), which RE2 accepts. RE2 logs a bad pattern to stderr from C++; that
is switched off, and the error becomes one `ConfigError` line instead.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from regwatch.errors import ConfigError

if TYPE_CHECKING:
    import re2

_LINE_BREAKS: Final = frozenset("\u0085\u2028\u2029")
_SHOWN_LENGTH: Final = 200
"""Characters of a refused pattern quoted in its error; a longer one is cut short."""


class Pattern:
    """A compiled pattern; `found_in` is Go's `MatchString`: a match anywhere in the text."""

    def __init__(self, search: Callable[[bytes], object | None]) -> None:
        self._search = search

    def found_in(self, text: str) -> bool:
        return self._search(_utf8(text)) is not None


def compile_pattern(text: str, field: str) -> Pattern:
    """`text` compiled as Go would; a pattern Go refuses is a `ConfigError` naming `field`."""

    # The spec's wording for each field, then the field named as decisions.md asks.
    heading = "invalid regex pattern: tag_regex" if field == "tag_regex" else f"invalid {field}:"

    def refused(reason: str) -> ConfigError:
        return ConfigError(f'{heading} "{_shown(text, _SHOWN_LENGTH)}": {_shown(reason)}')

    try:
        encoded = text.encode()
    except UnicodeEncodeError:
        raise refused("invalid UTF-8") from None
    if _has_any_byte_escape(text):
        raise refused("invalid escape sequence: \\C")
    # Imported here: RE2's library costs 2 MiB, which a step without a pattern never needs.
    import re2  # noqa: PLC0415

    options = re2.Options()
    options.log_errors = False
    try:
        compiled = re2.compile(encoded, options)
    except re2.error as exc:
        raise refused(_reason(exc)) from None
    return Pattern(compiled.search)


def _shown(text: str, limit: int | None = None) -> str:
    """`text` on one line: control characters and Unicode line breaks written as escapes."""
    cut = limit is not None and len(text) > limit
    rendered = "".join(_escaped(char) for char in (text[:limit] if cut else text))
    return f"{rendered}…" if cut else rendered


def _escaped(char: str) -> str:
    if char in _LINE_BREAKS or unicodedata.category(char) in ("Cc", "Cs"):
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return char


def _reason(exc: re2.error) -> str:
    """RE2's message: bytes from C++, holding a piece of the pattern."""
    message = exc.args[0] if exc.args else ""
    if isinstance(message, bytes):
        return message.decode(errors="replace")
    return str(message) or "invalid pattern"


def _has_any_byte_escape(text: str) -> bool:
    r"""True when `\C` appears as an escape (not after another backslash, not inside `\Q…\E`)."""
    index = 0
    while index < len(text) - 1:
        if text[index] != "\\":
            index += 1
            continue
        following = text[index + 1]
        if following == "C":
            return True
        if following == "Q":
            end = text.find("\\E", index + 2)
            if end < 0:
                return False
            index = end + 2
            continue
        index += 2
    return False


def _utf8(text: str) -> bytes:
    """The text Go would hold: a lone surrogate (from a JSON `\\ud800`) becomes U+FFFD."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text).encode()

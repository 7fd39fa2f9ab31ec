"""Go's `path/filepath` rules on Unix (Clean, Join, Match, Glob), for the put step's paths.

The Go resource finds `params.image` with `filepath.Glob(filepath.Join(src, image))` and the
additional tags file with `filepath.Join(src, path)`; pipelines are written against those
rules, which differ from Python's `glob`: `[^a]` negates and `!` is an ordinary character,
`\\` escapes the next character, a malformed pattern is an error even where nothing matches,
dotfiles match `*`, and `Join` cleans lexically, so `/image.tar` stays below SRC while `..`
steps up exactly as far as it says.
"""

from __future__ import annotations

import os
import stat

from regwatch.errors import ConfigError

_META = frozenset("*?[\\")


def bad_pattern() -> ConfigError:
    """Go's `filepath.ErrBadPattern`."""
    return ConfigError("syntax error in pattern")


def clean(path: str) -> str:
    """The shortest path naming the same file by lexical processing alone (`filepath.Clean`)."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part != "..":
            parts.append(part)
        elif parts and parts[-1] != "..":
            parts.pop()
        elif not rooted:
            parts.append("..")
    text = "/".join(parts)
    return "/" + text if rooted else text or "."


def join(*elements: str) -> str:
    """`filepath.Join`: the non-empty elements joined by `/` and cleaned; `""` if all empty."""
    for index, element in enumerate(elements):
        if element:
            return clean("/".join(elements[index:]))
    return ""


def escape(path: str) -> str:
    """A pattern matching exactly `path` (a backslash before every special character)."""
    return "".join(f"\\{char}" if char in _META else char for char in path)


def has_meta(path: str) -> bool:
    return any(char in _META for char in path)


def match(pattern: str, name: str) -> bool:
    """`filepath.Match`: whether `name` matches the whole `pattern`; raises on a bad pattern.

    `*` is any run of characters but `/`, `?` one character but `/`, `[a-z]` and `[^a-z]` a
    class and its negation, `\\c` the character `c`.
    """
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            return "/" not in name  # a trailing `*` takes the rest unless it has a `/`
        rest = _match_chunk(chunk, name)
        if rest is not None and (not rest or pattern):
            name = rest
            continue
        if star and (skipped := _match_after_skipping(chunk, name, last=not pattern)) is not None:
            name = skipped
            continue
        while pattern:  # a mismatch still reports a malformed rest of the pattern, as Go does
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, "")
        return False
    return not name


def _match_after_skipping(chunk: str, name: str, *, last: bool) -> str | None:
    """What follows `chunk` matched after a `*` skipped 1, 2, … characters (never a `/`)."""
    for index, char in enumerate(name):
        if char == "/":
            return None
        rest = _match_chunk(chunk, name[index + 1 :])
        if rest is not None and not (last and rest):
            return rest
    return None


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    """Leading stars, then the text up to the next star outside a class."""
    stripped = pattern.lstrip("*")
    star = len(stripped) != len(pattern)
    in_class = False
    index = 0
    while index < len(stripped):
        char = stripped[index]
        if char == "\\":
            index += 1 if index + 1 < len(stripped) else 0
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "*" and not in_class:
            break
        index += 1
    return star, stripped[:index], stripped[index:]


def _match_chunk(chunk: str, text: str) -> str | None:
    """The rest of `text` after `chunk` (which has no star), or None; the whole chunk is
    parsed even after a mismatch, so a malformed one always raises."""
    failed = False
    while chunk:
        failed = failed or not text
        char = chunk[0]
        if char == "[":
            current = ""
            if not failed:
                current, text = text[0], text[1:]
            chunk = chunk[1:]
            negated = chunk.startswith("^")
            chunk = chunk[1:] if negated else chunk
            found = False
            ranges = 0
            while not (chunk.startswith("]") and ranges > 0):
                low, chunk = _class_char(chunk)
                high = low
                if chunk[0] == "-":
                    high, chunk = _class_char(chunk[1:])
                found = found or (not failed and low <= current <= high)
                ranges += 1
            chunk = chunk[1:]
            failed = failed or found == negated
        elif char == "?":
            if not failed:
                failed = text[0] == "/"
                text = text[1:]
            chunk = chunk[1:]
        else:
            if char == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise bad_pattern()
            if not failed:
                failed = chunk[0] != text[0]
                text = text[1:]
            chunk = chunk[1:]
    return None if failed else text


def _class_char(chunk: str) -> tuple[str, str]:
    """One (possibly escaped) character of a class, and what follows it (never empty)."""
    if not chunk or chunk[0] in "-]":
        raise bad_pattern()
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise bad_pattern()
    if len(chunk) < 2:
        raise bad_pattern()
    return chunk[0], chunk[1:]


def glob(pattern: str) -> list[str]:
    """`filepath.Glob`: the existing paths matching `pattern`; raises on a bad pattern.

    I/O errors are ignored (an unreadable directory matches nothing), as in Go. Only
    directories are listed: no file is opened, so a FIFO cannot block here.
    """
    match(pattern, "")
    if not has_meta(pattern):
        try:
            os.lstat(pattern)
        except (OSError, ValueError):
            return []
        return [pattern]
    cut = pattern.rfind("/") + 1
    directory, name = pattern[:cut], pattern[cut:]
    if directory not in ("", "/"):
        directory = directory[:-1]
    directory = directory or "."
    if not has_meta(directory):
        return _glob_in(directory, name)
    if directory == pattern:
        raise bad_pattern()
    return [path for found in glob(directory) for path in _glob_in(found, name)]


def _glob_in(directory: str, pattern: str) -> list[str]:
    try:
        if not stat.S_ISDIR(os.stat(directory).st_mode):
            return []
        names = sorted(os.listdir(directory))
    except (OSError, ValueError):
        return []
    return [join(directory, name) for name in names if match(pattern, name)]

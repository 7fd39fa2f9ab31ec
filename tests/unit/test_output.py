"""One line per message: escaping, the log formatter, warnings, and a stdout that refuses."""

from __future__ import annotations

import errno
import io
import logging
import sys
import warnings

import pytest

from regwatch.frontends.output import OneLineFormatter, deliver, escaped, log_warnings, write_line


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, 'quoted' and ünïcödé", "plain text, 'quoted' and ünïcödé"),
        ("a\nb", "a\\nb"),
        ("a\r\nb", "a\\r\\nb"),
        ("a\x00b", "a\\x00b"),
        ("tab\there", "tab\\there"),
        ("esc\x1b[31mred", "esc\\x1b[31mred"),
        ("del\x7f", "del\\x7f"),
        ("next\x85line", "next\\x85line"),
        ("line\u2028separator", "line\\u2028separator"),
        ("paragraph\u2029separator", "paragraph\\u2029separator"),
        ("vertical\x0btab\x0cfeed\x1cfile", "vertical\\x0btab\\x0cfeed\\x1cfile"),
    ],
)
def test_escaped_is_one_line(text: str, shown: str) -> None:
    assert escaped(text) == shown
    assert len(escaped(text).splitlines()) == 1


def test_every_code_point_python_splits_lines_on_is_escaped() -> None:
    breakers = [chr(c) for c in range(0x110000) if len(f"a{chr(c)}b".splitlines()) > 1]
    assert breakers
    for char in breakers:
        assert escaped(f"a{char}b").splitlines() == [escaped(f"a{char}b")], hex(ord(char))


def test_write_line_writes_exactly_one_line() -> None:
    stream = io.StringIO()
    write_line(stream, "error: tag 'a\nerror: forged' is invalid\u2028too")
    assert stream.getvalue().count("\n") == 1
    assert stream.getvalue().splitlines() == ["error: tag 'a\\nerror: forged' is invalid\\u2028too"]


def test_formatter_escapes_messages_and_indents_tracebacks() -> None:
    formatter = OneLineFormatter("%(levelname)s: %(message)s")
    try:
        raise ValueError("bad\nerror: forged")
    except ValueError:
        info = sys.exc_info()
    record = logging.LogRecord("regwatch", logging.DEBUG, __file__, 1, "x %s", ("a\nb",), info)
    lines = formatter.format(record).splitlines()
    assert lines[0] == "DEBUG: x a\\nb"
    assert len(lines) > 1
    assert all(line.startswith("    ") for line in lines[1:])
    assert not any(line.startswith("error:") for line in lines)


def test_warnings_become_one_line_records() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("regwatch.test-output")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter("%(levelname)s: %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            log_warnings(logger)
            warnings.warn("first line\nsecond line", FutureWarning, stacklevel=1)
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue() == "WARNING: FutureWarning: first line\\nsecond line\n"


class _Refusing(io.StringIO):
    def __init__(self, error: OSError) -> None:
        super().__init__()
        self.error = error

    def flush(self) -> None:
        raise self.error


def test_deliver_ends_quietly_on_a_closed_pipe() -> None:
    stderr = io.StringIO()
    assert deliver("[]\n", _Refusing(BrokenPipeError(errno.EPIPE, "Broken pipe")), stderr, "") == 0
    assert stderr.getvalue() == ""


def test_deliver_reports_a_full_device_in_one_line() -> None:
    stderr = io.StringIO()
    full = _Refusing(OSError(errno.ENOSPC, "No space left on device"))
    assert deliver("[]\n", full, stderr, "error: ") == 1
    assert stderr.getvalue() == "error: cannot write to stdout: no space left on device\n"

"""What a front end writes: one escaped line per message on stderr, the answer on stdout.

A message carries values from a pipeline or a server; a newline among them would start a second
line that reads as another error, so control characters, NUL and the Unicode line breaks are
written as escapes, at the two places lines are written: the error printer and the log
formatter. Python warnings become one-line log records instead of source excerpts.

stdout may be a pipe the reader closed (`| head`) or a full device: a closed pipe is a normal
end for a command line tool and ends quietly; any other write failure is one error line.
Either way stdout is then pointed at /dev/null, so the interpreter's final flush of what is
still buffered cannot print "Exception ignored" at exit.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import TextIO


def _escape_table() -> dict[int, str]:
    table = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
    table.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
    table.update({0x2028: "\\u2028", 0x2029: "\\u2029"})
    return table


_ESCAPES = _escape_table()


def escaped(text: str) -> str:
    """`text` on one line: control characters, NUL, U+0085, U+2028 and U+2029 as escapes."""
    return text.translate(_ESCAPES)


def write_line(stream: TextIO, text: str) -> None:
    """One line on `stream` (stderr), whatever `text` holds."""
    stream.write(escaped(text) + "\n")
    stream.flush()


class OneLineFormatter(logging.Formatter):
    """Every record is one line; a traceback (debug only) follows it, each of its lines indented.

    The indent means no line of a traceback, whatever the exception says, can pass for a record
    or an error line of its own.
    """

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        lines = [escaped(self.formatMessage(record))]
        if record.exc_info:
            lines += self.formatException(record.exc_info).splitlines()
        if record.stack_info:
            lines += self.formatStack(record.stack_info).splitlines()
        return "\n    ".join([lines[0], *(escaped(line) for line in lines[1:])])


def log_warnings(logger: logging.Logger) -> None:
    """Show Python warnings (a library's `FutureWarning`, `SAWarning`) as one-line records."""

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        del filename, lineno, file, line  # the source excerpt is for developers, not users
        logger.warning("%s: %s", category.__name__, message)

    warnings.showwarning = show


def deliver(answer: str, stdout: TextIO, stderr: TextIO, prefix: str) -> int:
    """Write and flush `answer`; the exit status: 0 also when the reader closed the pipe."""
    try:
        stdout.write(answer)
        stdout.flush()
    except BrokenPipeError:
        _discard(stdout)
        return 0
    except OSError as exc:
        _discard(stdout)
        reason = (exc.strerror or str(exc)).lower()
        write_line(stderr, f"{prefix}cannot write to stdout: {reason}")
        return 1
    return 0


def _discard(stream: TextIO) -> None:
    """Point `stream`'s descriptor at /dev/null (when it has one), dropping what is buffered."""
    try:
        descriptor = stream.fileno()
    except (OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, descriptor)
    finally:
        os.close(devnull)

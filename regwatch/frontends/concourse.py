"""Concourse's check/in/out protocol: JSON request on stdin, one JSON document on stdout.

stdout is the protocol and stderr the log: anything else that prints while a command runs is
redirected to stderr, so a stray print can never corrupt the answer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from regwatch import service
from regwatch.config import parse_check_request
from regwatch.errors import RegwatchError

log = logging.getLogger("regwatch")


def check_main(
    argv: Sequence[str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """`/opt/resource/check`: prints the versions as a JSON array, oldest first."""
    del argv  # check takes no arguments
    return _run(_check, stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr)


def _check(request: str) -> Any:
    parsed = parse_check_request(request)
    _configure_logging(debug=parsed.source.debug)
    versions = service.check(parsed.source, parsed.version)
    return [v.model_dump() for v in versions]


def _run(command: Callable[[str], Any], stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    _configure_logging(debug=False, stream=stderr)
    try:
        with contextlib.redirect_stdout(stderr):
            answer = command(stdin.read())
    except RegwatchError as exc:
        print(f"error: {exc}", file=stderr)
        return 1
    except Exception as exc:  # the one place an unexpected failure becomes a line
        log.debug("internal error", exc_info=True)
        print(f"error: internal error: {type(exc).__name__}: {exc}", file=stderr)
        return 1
    stdout.write(json.dumps(answer) + "\n")
    stdout.flush()
    return 0


def _configure_logging(*, debug: bool, stream: TextIO | None = None) -> None:
    logger = logging.getLogger("regwatch")
    if stream is not None:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.handlers[:] = [handler]
        logger.propagate = False
    logger.setLevel(logging.DEBUG if debug else logging.INFO)

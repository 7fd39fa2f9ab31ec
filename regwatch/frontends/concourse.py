"""Concourse's check/in/out protocol: JSON request on stdin, one JSON document on stdout.

stdout is the protocol and stderr the log: anything else that prints while a command runs is
redirected to stderr, so a stray print can never corrupt the answer. Every failure, an
interrupt (exit 130) included, ends in one `error:` line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TextIO

from regwatch import service
from regwatch.config import Version, parse_check_request, parse_in_request, parse_out_request
from regwatch.errors import ConfigError, RegwatchError
from regwatch.frontends.interrupt import Interruption, new_entries_remover
from regwatch.frontends.output import OneLineFormatter, deliver, log_warnings, write_line
from regwatch.frontends.progress import progress_for

log = logging.getLogger("regwatch")

REQUEST_LIMIT: Final = 16 << 20
"""Characters a request on stdin may hold; inline CA certificates and keys fit many times over."""


def check_main(
    argv: Sequence[str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """`/opt/resource/check`: prints the versions as a JSON array, oldest first."""
    del argv  # check takes no arguments
    return _run(_check, stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr)


def in_main(
    argv: Sequence[str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """`/opt/resource/in DEST`: fetches the version into DEST, prints version and metadata."""

    def get(request: str, destination: Path, err: TextIO) -> Any:
        parsed = parse_in_request(request)
        _configure_logging(debug=parsed.source.debug)
        metadata = service.get(
            parsed.source, parsed.params, parsed.version, destination, progress=progress_for(err)
        )
        return _answer(parsed.version, metadata)

    return _with_directory(get, argv, stdin, stdout, stderr, writes=True)


def out_main(
    argv: Sequence[str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """`/opt/resource/out SRC`: pushes an image from the build's inputs, prints the version."""

    def put(request: str, sources: Path, err: TextIO) -> Any:
        parsed = parse_out_request(request)
        _configure_logging(debug=parsed.source.debug)
        progress = None if parsed.source.debug else progress_for(err)
        pushed = service.put(parsed.source, parsed.params, sources, progress=progress)
        return _answer(pushed.version, pushed.metadata)

    return _with_directory(put, argv, stdin, stdout, stderr, writes=False)


def _with_directory(
    step: Callable[[str, Path, TextIO], Any],
    argv: Sequence[str] | None,
    stdin: TextIO | None,
    stdout: TextIO | None,
    stderr: TextIO | None,
    *,
    writes: bool,
) -> int:
    """`in` and `out` take their directory as argv[1]; the Go resource's message when absent.

    When the step `writes` to it (`in`), an interrupt removes what the step added.
    """
    args = list(sys.argv if argv is None else argv)
    err = stderr or sys.stderr
    if len(args) < 2:
        write_line(err, "error: destination path not specified")
        return 1
    directory = Path(args[1])
    return _run(
        lambda request: step(request, directory, err),
        stdin or sys.stdin,
        stdout or sys.stdout,
        err,
        undo=new_entries_remover(directory) if writes else lambda: None,
    )


def _answer(version: Version, metadata: Sequence[service.Metadata]) -> dict[str, Any]:
    return {
        "version": version.model_dump(),
        "metadata": [{"name": m.name, "value": m.value} for m in metadata],
    }


def _check(request: str) -> Any:
    parsed = parse_check_request(request)
    _configure_logging(debug=parsed.source.debug)
    versions = service.check(parsed.source, parsed.version)
    return [v.model_dump() for v in versions]


def _run(
    command: Callable[[str], Any],
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
    undo: Callable[[], None] = lambda: None,
) -> int:
    _configure_logging(debug=False, stream=stderr)
    interruption = Interruption(stderr, undo)
    with interruption.handling():
        try:
            with contextlib.redirect_stdout(stderr):
                answer = command(_request(stdin))
            return deliver(json.dumps(answer) + "\n", stdout, stderr, "error: ")
        except RegwatchError as exc:
            write_line(stderr, f"error: {exc}")
            return 1
        except KeyboardInterrupt:
            return interruption.report()
        except Exception as exc:  # the one place an unexpected failure becomes a line
            log.debug("internal error", exc_info=True)
            write_line(stderr, f"error: internal error: {type(exc).__name__}: {exc}")
            return 1


def _request(stdin: TextIO) -> str:
    """The JSON request; bounded, so an endless stdin (`< /dev/zero`) fails instead of growing."""
    text = stdin.read(REQUEST_LIMIT + 1)
    if len(text) > REQUEST_LIMIT:
        raise ConfigError(f"invalid payload: larger than {REQUEST_LIMIT >> 20} MiB")
    return text


def _configure_logging(*, debug: bool, stream: TextIO | None = None) -> None:
    logger = logging.getLogger("regwatch")
    if stream is not None:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(OneLineFormatter("%(levelname)s: %(message)s"))
        logger.handlers[:] = [handler]
        logger.propagate = False
        log_warnings(logger)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)

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

from regwatch.config import Source, parse_check_request, parse_in_request, parse_out_request
from regwatch.errors import ConfigError, RegwatchError
from regwatch.frontends.interrupt import Interruption, new_entries_remover
from regwatch.frontends.output import OneLineFormatter, deliver, log_warnings, write_line
from regwatch.frontends.progress import progress_for
from regwatch.frontends.sources import (
    CloudLogin,
    cloud_login,
    cursor_of,
    fetch_spec,
    login_lookup,
    push_spec,
    watch_spec,
)
from regwatch.retrying import RetryPolicy, request_timeout_from_env
from regwatch.service import Service
from regwatch.specs import Metadata, TagDigest

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
        source = parsed.source
        _configure_logging(debug=source.debug)
        login = cloud_login(source)
        spec = watch_spec(source, unresolved="failed to resolve repository", login=login)
        fetch = fetch_spec(parsed.params, parsed.version)
        progress = None if source.debug else progress_for(err)
        with _service(source, login) as service:
            metadata = service.get(spec, fetch, destination, progress=progress)
        return _answer(fetch.version, metadata)

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
        source = parsed.source
        _configure_logging(debug=source.debug)
        login = cloud_login(source)
        spec = watch_spec(
            source, unresolved="could not resolve repository", mirrored=False, login=login
        )
        progress = None if source.debug else progress_for(err)
        with _service(source, login) as service:
            pushed = service.put(
                spec, push_spec(parsed.params, source.content_trust), sources, progress=progress
            )
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


def _service(source: Source, login: CloudLogin | None = None) -> Service:
    """The step's service: its store, the retry and deadline settings of the environment, and
    an ECR or ACR login's credentials for its registry."""
    return Service(
        store=source.store,
        retry=RetryPolicy.from_env(),
        request_timeout=request_timeout_from_env(),
        credentials=login_lookup([login] if login is not None else []),
    )


def _version(version: TagDigest) -> dict[str, str]:
    return {"tag": version.tag, "digest": version.digest}


def _answer(version: TagDigest, metadata: Sequence[Metadata]) -> dict[str, Any]:
    return {
        "version": _version(version),
        "metadata": [{"name": m.name, "value": m.value} for m in metadata],
    }


def _check(request: str) -> Any:
    parsed = parse_check_request(request)
    source = parsed.source
    _configure_logging(debug=source.debug)
    login = cloud_login(source)
    spec = watch_spec(
        source,
        unresolved=f"checking origin {source.repository} failed: resolve repository",
        login=login,
    )
    with _service(source, login) as service:
        versions = service.check(spec, cursor_of(parsed.version))
    return [_version(v) for v in versions]


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

"""The `regwatch` command: argument parsing, one-line errors and exit codes."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, NoReturn, TextIO

from regwatch import __version__
from regwatch.errors import ConfigError, NotRecorded, RegwatchError
from regwatch.frontends.output import (
    OneLineFormatter,
    deliver,
    escaped,
    log_warnings,
    write_line,
)
from regwatch.retrying import RetryPolicy
from regwatch.service import Service
from regwatch.specs import Access

log = logging.getLogger("regwatch")

CA_FILE_LIMIT: Final = 1 << 20
"""Bytes a `--ca-cert` file may hold: a bundle of every public root is a fifth of this."""


def main(
    argv: Sequence[str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run one command; returns the exit status (0 ok, 1 error, 2 usage, 130 interrupted)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    env = os.environ if environ is None else environ
    args = _parser().parse_args(argv)
    if hasattr(args, "concourse"):
        # Imported here: the Concourse protocol decodes its request with pydantic (~0.2 s of
        # start-up), which `tags` and `digest` never need.
        from regwatch.frontends import concourse  # noqa: PLC0415

        protocol: Callable[..., int] = getattr(concourse, args.concourse)
        destination = getattr(args, "destination", None)
        return protocol(["regwatch", *([destination] if destination else [])], sys.stdin, out, err)
    _configure_logging(err, debug=args.debug)
    command: Callable[[argparse.Namespace, Mapping[str, str]], str | int] = args.command
    try:
        answer = command(args, env)
    except RegwatchError as exc:
        write_line(err, f"regwatch: {exc}")
        return 1
    except KeyboardInterrupt:
        write_line(err, "regwatch: interrupted")
        return 130
    except Exception as exc:  # the one place an unexpected failure becomes a line
        if args.debug:
            log.exception("internal error")
        write_line(err, f"regwatch: internal error: {type(exc).__name__}: {exc}")
        return 1
    if isinstance(answer, int):  # a daemon: it said what it had to on the way
        return answer
    return deliver(answer, out, err, "regwatch: ")


def _tags(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    with _service(env) as service:
        tags = service.list_tags(args.repository, _access(args, env))
    return "".join(f"{tag}\n" for tag in tags)


def _digest(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    with _service(env) as service:
        return service.resolve_digest(args.reference, _access(args, env)) + "\n"


def _migrate(args: argparse.Namespace, _env: Mapping[str, str]) -> str:
    with Service(store=args.store) as service:
        return service.migrate() + "\n"


def _watch(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from regwatch.frontends import daemon  # noqa: PLC0415  # APScheduler: for the daemon only
    from regwatch.frontends.metrics import Metrics, parse_listen  # noqa: PLC0415
    from regwatch.frontends.sources import login_lookup  # noqa: PLC0415
    from regwatch.frontends.watchconfig import default_store, load_config  # noqa: PLC0415
    from regwatch.registry.dockerconfig import docker_credentials  # noqa: PLC0415
    from regwatch.retrying import request_timeout_from_env  # noqa: PLC0415

    config = load_config(Path(args.config), env)
    listen = parse_listen(args.listen) if args.listen else None
    if config.store == default_store(env):  # the state directory is ours to make
        Path(config.store.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    ours = logging.getLogger("regwatch")
    if not args.debug:
        ours.setLevel(logging.INFO)
    timer = logging.getLogger("apscheduler")  # a skipped run says why, in our one-line format
    timer.handlers[:] = ours.handlers
    timer.setLevel(logging.WARNING)
    timer.propagate = False
    metrics = Metrics(daemon.daemon_name())
    timeout = request_timeout_from_env(env)
    service = Service(
        store=config.store,
        # A 429 pauses that registry (its polls skip until Retry-After) instead of holding
        # a worker for the retry budget: the other registries keep their schedule.
        retry=dataclasses.replace(RetryPolicy.from_env(env), wait_out_rate_limits=False),
        request_timeout=timeout,
        polled_by="watch",
        daemon=daemon.daemon_name(),
        on_answer=metrics.answered,
        credentials=login_lookup(
            (w.login for w in config.watches if w.login is not None),
            docker_credentials(env, timeout),
        ),
    )
    with service:
        return daemon.run(config, service, metrics, once=args.once, listen=listen)


def _status(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    from regwatch.frontends import statusview  # noqa: PLC0415
    from regwatch.frontends.watchconfig import load_config  # noqa: PLC0415

    config = load_config(Path(args.config), env)
    with Service(store=config.store) as service:
        found = service.status([watch.spec for watch in config.watches])
    rows = statusview.rows(config.watches, found)
    return statusview.as_json(rows) if args.format == "json" else statusview.as_table(rows)


def _history(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    """Read only: the store must exist, and nothing in it changes."""
    from regwatch.frontends.historyview import (  # noqa: PLC0415
        INTERVAL,
        TAGS_AT,
        parse_moment,
        render,
        render_one,
    )
    from regwatch.projections.history import ROW, absence, iso_time, pointing_at  # noqa: PLC0415
    from regwatch.refs import parse_repository, parse_tag  # noqa: PLC0415

    repository = parse_repository(args.repository)
    tag = parse_tag(args.tag) if args.tag is not None else None
    now = datetime.now(UTC)
    at, since, until = (
        parse_moment(option, text, now) if text is not None else None
        for option, text in (("--at", args.at), ("--since", args.since), ("--until", args.until))
    )
    if at is not None and (since or until):
        raise ConfigError("--at answers for one moment: leave out --since and --until")
    with Service(store=_history_store(args, env)) as service:
        rows = service.history(repository)
    if at is not None:
        present = pointing_at(rows if tag is None else [m for m in rows if m.tag == tag], at)
        if tag is None:
            return render([p.row() for p in present.values()], TAGS_AT, args.format)
        if tag not in present:
            raise NotRecorded(
                f"tag {tag} of {repository} was not present at {iso_time(at)}:"
                f" {absence(rows, tag, at)}"
            )
        answer = present[tag].row()
        return render_one({k: answer[k] for k in INTERVAL}, INTERVAL, args.format)
    chosen = [
        m.row()
        for m in rows
        if (tag is None or m.tag == tag)
        and (since is None or m.time >= since)
        and (until is None or m.time <= until)
    ]
    # The table is for people: the repository they asked about is not repeated on each line.
    columns = ROW if args.format != "table" else tuple(c for c in ROW if c != "repository")
    return render(chosen, columns, args.format)


def _history_store(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    """`--store`, else the store of `--config`, else the daemon's default store."""
    if args.store:
        return str(args.store)
    from regwatch.frontends.watchconfig import default_store, load_config  # noqa: PLC0415

    if args.config:
        return load_config(Path(args.config), env).store
    return default_store(env)


def _service(env: Mapping[str, str]) -> Service:
    """A service whose registries fall back to the Docker config's credentials; a helper must
    answer within the request timeout."""
    # Imported here: the HTTP stack (~0.2 s of start-up) is for the commands that use it.
    from regwatch.registry.dockerconfig import docker_credentials  # noqa: PLC0415
    from regwatch.retrying import request_timeout_from_env  # noqa: PLC0415

    timeout = request_timeout_from_env(env)
    return Service(
        retry=RetryPolicy.from_env(env),
        request_timeout=timeout,
        credentials=docker_credentials(env, timeout),
    )


def _access(args: argparse.Namespace, env: Mapping[str, str]) -> Access:
    return Access(
        username=args.username or env.get("REGWATCH_USERNAME") or None,
        password=args.password or env.get("REGWATCH_PASSWORD") or None,
        ca_certs=tuple(_read_ca(path) for path in args.ca_cert),
        insecure=args.insecure,
    )


def _read_ca(path: str) -> str:
    """The PEM text of a CA file: a regular file of at most CA_FILE_LIMIT bytes, never a FIFO
    or device (opened without blocking, so a FIFO nobody writes to cannot hang us)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with open(descriptor, "rb") as file:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                raise ConfigError(f"cannot read CA certificate {path}: not a regular file")
            data = file.read(CA_FILE_LIMIT + 1)
        if len(data) > CA_FILE_LIMIT:
            raise ConfigError(
                f"cannot read CA certificate {path}: larger than {CA_FILE_LIMIT >> 20} MiB"
            )
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read CA certificate {path}: {reason}") from exc


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error quotes the bad argument escaped, on one line."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, escaped(f"{self.prog}: error: {message}") + "\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="regwatch", description="Watch container registries and record what they say."
    )
    parser.add_argument("--version", action="version", version=f"regwatch {__version__}")
    parser.add_argument("--debug", action="store_true", help="log every request step to stderr")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    registry_options = _Parser(add_help=False)
    registry_options.add_argument(
        "--username", help="registry user name (default: $REGWATCH_USERNAME)"
    )
    registry_options.add_argument(
        "--password", help="registry password or token (default: $REGWATCH_PASSWORD)"
    )
    registry_options.add_argument(
        "--ca-cert",
        action="append",
        default=[],
        metavar="FILE",
        help="PEM file of an extra CA to trust (repeatable); added to the system roots",
    )
    registry_options.add_argument(
        "--insecure",
        action="store_true",
        help="allow plain HTTP to this registry (TLS certificates are still verified)",
    )
    debug = _Parser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)

    tags = commands.add_parser(
        "tags",
        parents=[registry_options, debug],
        help="list a repository's tags, one a line",
        description="List a repository's tags, one a line, in the registry's order.",
    )
    tags.add_argument("repository", metavar="REPOSITORY", help="e.g. ghcr.io/acme/app or alpine")
    tags.set_defaults(command=_tags)

    digest = commands.add_parser(
        "digest",
        parents=[registry_options, debug],
        help="print the digest a tag points to",
        description="Print the manifest digest a reference names (an index digest for "
        "multi-platform images).",
    )
    digest.add_argument("reference", metavar="REFERENCE", help="e.g. alpine:3.20 or app@sha256:…")
    digest.set_defaults(command=_digest)

    migrate = commands.add_parser(
        "migrate",
        parents=[debug],
        help="upgrade a persistent store's schema to this regwatch's",
        description="Upgrade the store's schema to this regwatch's revision (creating it when "
        "empty). Idempotent; run it while nothing writes to the store.",
    )
    migrate.add_argument(
        "--store",
        required=True,
        metavar="URL",
        help="the store's SQLAlchemy URL, as in a source's `store`",
    )
    migrate.set_defaults(command=_migrate)

    watch = commands.add_parser(
        "watch",
        parents=[debug],
        help="poll the config's watches on their schedules and record what they show",
        description="Run the watcher daemon: poll every watch of the config on its schedule, "
        "record what changed in the store. SIGTERM or SIGINT stops it (polls in flight get "
        "30 s to finish).",
    )
    watch.add_argument("--config", "-c", required=True, metavar="FILE", help="the YAML config")
    watch.add_argument(
        "--once",
        action="store_true",
        help="poll every watch once and exit: 0 when every poll succeeded, 1 otherwise",
    )
    watch.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="serve /metrics (Prometheus) and /healthz there, e.g. 127.0.0.1:9100",
    )
    watch.set_defaults(command=_watch)

    status = commands.add_parser(
        "status",
        parents=[debug],
        help="show each watch's last poll, outcome, tags known and next due time",
        description="Show what the store knows of each watch of the config (reads only: a "
        "store that does not exist yet shows every watch as never polled).",
    )
    status.add_argument("--config", "-c", required=True, metavar="FILE", help="the YAML config")
    status.add_argument("--format", choices=("table", "json"), default="table")
    status.set_defaults(command=_status)

    history = commands.add_parser(
        "history",
        parents=[debug],
        help="show what a repository's tags pointed to, and when that changed",
        description="Show the tag movements the store recorded for REPOSITORY, oldest first, "
        "or with --at what each tag pointed to at that moment. Reads only. A time T is ISO "
        "8601 (2026-03-01, 2026-03-01T12:00:00Z; UTC when no offset is given) or how long "
        "ago (2d, 3h, 30m).",
    )
    history.add_argument("repository", metavar="REPOSITORY", help="e.g. alpine or ghcr.io/acme/app")
    history.add_argument("--tag", metavar="TAG", help="only this tag")
    history.add_argument("--since", metavar="T", help="only movements at or after T")
    history.add_argument("--until", metavar="T", help="only movements at or before T")
    history.add_argument(
        "--at", metavar="T", help="what the tags (or --tag) pointed to at T, since and until when"
    )
    history.add_argument("--format", choices=("table", "json", "csv"), default="table")
    where = history.add_mutually_exclusive_group()
    where.add_argument("--store", metavar="URL", help="the store's SQLAlchemy URL")
    where.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="the daemon's YAML config, whose store to read (default: the daemon's default store)",
    )
    history.set_defaults(command=_history)

    check = commands.add_parser(
        "check",
        help="Concourse check: JSON request on stdin, versions as JSON on stdout",
        description="Run the Concourse resource's check step (as /opt/resource/check does).",
    )
    check.set_defaults(concourse="check_main")

    get = commands.add_parser(
        "in",
        help="Concourse in: fetch the version on stdin into DESTINATION",
        description="Run the Concourse resource's get step (as /opt/resource/in does).",
    )
    get.add_argument("destination", metavar="DESTINATION", nargs="?")
    get.set_defaults(concourse="in_main")

    put = commands.add_parser(
        "out",
        help="Concourse out: push the image the request on stdin names from SOURCES",
        description="Run the Concourse resource's put step (as /opt/resource/out does).",
    )
    put.add_argument("destination", metavar="SOURCES", nargs="?")
    put.set_defaults(concourse="out_main")
    return parser


def _configure_logging(stream: TextIO, *, debug: bool) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter("regwatch: %(message)s"))
    root = logging.getLogger("regwatch")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    root.propagate = False
    log_warnings(root)

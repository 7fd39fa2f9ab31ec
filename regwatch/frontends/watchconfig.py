"""The daemon's config file: YAML, validated strictly, `${VAR}` from the environment, as `Watch`es.

A bad config stops start-up with one line, `config FILE: key: reason`, the key as the user wrote
it with 0-based list indexes. A watch's `source` is exactly a Concourse source and becomes a
`WatchSpec` through `sources.watch_spec`, so a field means the same to the daemon and to `check`.
A value read from a variable may be a secret: a message about it shows `${VAR}`, not the value.
Loading reads the one file and writes nothing.

The YAML loader is PyYAML's safe loader with two changes: a number keeps the text it was written
as (so `tag: 3.10` is the tag `3.10`, as a Concourse payload's raw number is), and a key given
twice in one mapping is refused instead of silently keeping the last.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar
from urllib.parse import urlsplit

import yaml
from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails

from regwatch.config import JSONNumber, Source
from regwatch.durations import parse_duration
from regwatch.errors import ConfigError
from regwatch.frontends.sources import CloudLogin, cloud_login, watch_spec
from regwatch.notify.settings import (
    KINDS,
    Apprise,
    Command,
    SinkSettings,
    Slack,
    Target,
    Webhook,
)
from regwatch.specs import WatchSpec

LARGEST: Final = 1024 * 1024
"""A config over 1 MiB is refused unread: no set of watches needs that much text."""
DEFAULT_RESCAN: Final = timedelta(hours=24)
CRON_TIMEZONE: Final = UTC
"""The zone a `cron` line is read in (the docs say UTC): the scheduler's trigger must use it."""
_MOST_VALUES: Final = 100_000
"""Values counted with every YAML alias expanded: a few aliases must not become a billion."""
_DEEPEST: Final = 64
_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class Jitter:
    """How far a run may start from its time: a share of the interval, or a fixed duration."""

    fraction: float = 0.0
    duration: timedelta | None = None

    def seconds(self, interval: timedelta) -> float:
        """The most a run may start early or late, for a watch with this `interval`."""
        if self.duration is not None:
            return self.duration.total_seconds()
        return self.fraction * interval.total_seconds()


@dataclass(frozen=True)
class Watch:
    """One entry of `watches`, with `defaults` merged under it and every value checked."""

    name: str
    """Unique in the config; the repository as the user wrote it unless `name` is given."""
    spec: WatchSpec
    every: timedelta | None
    cron: str | None
    """A 5-field crontab line, checked with APScheduler, read in `CRON_TIMEZONE`."""
    jitter: Jitter
    login: CloudLogin | None = None
    """An ECR or ACR source's login: it logs in at the first poll and renews itself."""


@dataclass(frozen=True)
class DaemonConfig:
    """The whole file, valid: what `regwatch watch` and `regwatch status` run from."""

    path: Path
    store: str
    """An SQLAlchemy URL; `default_store` when the config names none."""
    watches: tuple[Watch, ...]
    workers: int = 4
    retention_runs: timedelta | None = None
    notify: tuple[SinkSettings, ...] = ()
    """The notification sinks, each checked: names unique, filters naming real watches."""


def default_store(environ: Mapping[str, str]) -> str:
    """A SQLite file under `$XDG_STATE_HOME` (a relative one is ignored, as the spec says)."""
    state = environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(state):
        home = environ.get("HOME") or str(Path.home())
        state = os.path.join(home, ".local", "state")
    return f"sqlite:///{os.path.join(state, 'regwatch', 'regwatch.db')}"


def load_config(path: Path, environ: Mapping[str, str]) -> DaemonConfig:
    """The config at `path`; any problem is one `ConfigError` line naming the file and key."""
    try:
        return _load(path, environ)
    except _Problem as problem:
        where = f"{problem.key}: " if problem.key else ""
        raise ConfigError(f"config {path}: {where}{problem.reason}") from None


class _Problem(Exception):
    """What is wrong and at which key (as written); `load_config` adds the file."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key
        self.reason = reason


# --- reading and parsing --------------------------------------------------------------------


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            data = file.read(LARGEST + 1)
    except FileNotFoundError:
        raise _Problem("", "no such file: config.example.yaml shows what one holds") from None
    except OSError as exc:
        raise _Problem("", f"cannot read: {(exc.strerror or str(exc)).lower()}") from None
    if len(data) > LARGEST:
        raise _Problem("", "larger than 1 MiB: refused unread")
    return data


@dataclass(frozen=True)
class _WrittenNumber(JSONNumber):
    """A YAML number: its text for fields that keep it (`tag`), its value for the rest."""

    value: int | float


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if key.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key.value!r} given twice", key.start_mark
                    )
                seen.add(key.value)
        mapping = super().construct_mapping(node, deep)
        # A key is a name: `1:` is the key "1", as JSON would have it.
        return {_key_text(key): value for key, value in mapping.items()}

    def construct_number(self, node: yaml.ScalarNode) -> _WrittenNumber:
        if node.tag.endswith(":int"):
            value: int | float = self.construct_yaml_int(node)
        else:
            value = self.construct_yaml_float(node)
        return _WrittenNumber(str(node.value), value)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_number)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_number)


def _parse(data: bytes) -> Any:
    try:
        return yaml.load(data, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        what = exc.problem or exc.context or "malformed"
        raise _Problem("", f"not valid YAML: {what}{at}") from None
    except yaml.reader.ReaderError as exc:
        reason = (
            f"character #x{exc.character:04x} is not allowed in YAML"
            if exc.encoding == "unicode" and isinstance(exc.character, int)
            else f"not {exc.encoding.upper()} text"
        )
        raise _Problem("", f"not valid YAML: {reason} at offset {exc.position}") from None
    except yaml.YAMLError as exc:
        raise _Problem("", f"not valid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise _Problem("", "not valid YAML: nested too deeply") from None


# --- ${VAR} ---------------------------------------------------------------------------------

_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{")


@dataclass(frozen=True)
class _Substitution:
    """A string that held variables: where, as written, and what the variables were."""

    where: tuple[str | int, ...]
    written: str
    value: str
    variables: tuple[tuple[str, str], ...]


class _Expander:
    """Copies the document with `${VAR}` replaced, and counts what it walks."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.visited = 0
        self.substitutions: list[_Substitution] = []

    def expand(self, node: Any, where: tuple[str | int, ...]) -> Any:
        self.visited += 1
        if self.visited > _MOST_VALUES:
            raise _Problem("", f"more than {_MOST_VALUES} values once YAML aliases are expanded")
        if len(where) > _DEEPEST:
            raise _Problem(_shown_key(where[:1]), f"nested deeper than {_DEEPEST} levels")
        if isinstance(node, dict):
            return {key: self.expand(value, (*where, key)) for key, value in node.items()}
        if isinstance(node, list):
            return [self.expand(item, (*where, i)) for i, item in enumerate(node)]
        if isinstance(node, str) and "${" in node:
            return self.substitute(node, where)
        return node

    def substitute(self, text: str, where: tuple[str | int, ...]) -> str:
        used: dict[str, str] = {}

        def value_of(match: re.Match[str]) -> str:
            if match[0] == "$${":
                return "${"
            name = match[1]
            if name is None:
                raise _Problem(
                    _shown_key(where),
                    "'${' starts no variable: write ${NAME} (letters, digits and _), "
                    "or $${ for a literal ${",
                )
            if name not in self.environ:
                raise _Problem(_shown_key(where), f"${{{name}}} is not set in the environment")
            used[name] = self.environ[name]
            return used[name]

        value = _REFERENCE.sub(value_of, text)
        if used:
            self.substitutions.append(_Substitution(where, text, value, tuple(used.items())))
        return value


_QUOTED = re.compile(r"""(['"])(.*?)\1""")


def _hidden(reason: str, substitutions: Sequence[_Substitution]) -> str:
    """`reason` with every value that came from a variable shown as written (`${VAR}`).

    A library may quote a piece of a value (`unrecognized expression "*/x"`): a quoted piece
    of three or more characters found inside a variable's value is shown as `…`.
    """
    for substitution in sorted(substitutions, key=lambda s: -len(s.value)):
        reason = reason.replace(repr(substitution.value), repr(substitution.written))
    variables = {value: name for s in substitutions for name, value in s.variables if value}
    for value in sorted(variables, key=len, reverse=True):
        reason = reason.replace(value, f"${{{variables[value]}}}")

    def piece(match: re.Match[str]) -> str:
        quoted = match[2]
        secret = len(quoted) >= 3 and "${" not in quoted and any(quoted in v for v in variables)
        return f"{match[1]}…{match[1]}" if secret else match[0]

    return _QUOTED.sub(piece, reason)


# --- the models -----------------------------------------------------------------------------


def _as_text(value: Any) -> Any:
    """A number where text is expected is refused for what it is not (`5`: no unit)."""
    return value.text if isinstance(value, _WrittenNumber) else value


def _checked_duration(text: str) -> str:
    parse_duration(text)
    return text


_PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")


def _jitter(text: str) -> Jitter:
    share = _PERCENT.fullmatch(text.strip())
    if share is not None:
        fraction = float(share[1]) / 100
        if fraction > 1:
            raise ValueError(f"{text!r} is more than the whole interval (100%)")
        return Jitter(fraction=fraction)
    try:
        return Jitter(duration=parse_duration(text))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a jitter: write a share of the interval such as 10%, "
            "or a duration such as 30s"
        ) from None


def _checked_jitter(text: str) -> str:
    _jitter(text)
    return text


def _checked_cron(text: str) -> str:
    try:
        CronTrigger.from_crontab(text, timezone=CRON_TIMEZONE)
    except ValueError as exc:
        detail = str(exc)
        raise ValueError(
            f"{text!r} is not a crontab line (minute hour day month weekday): "
            f"{detail[:1].lower()}{detail[1:]}"
        ) from None
    return text


def _whole_number(value: Any) -> Any:
    if isinstance(value, _WrittenNumber) and isinstance(value.value, int):
        return value.value
    return value


# Checked as text here, converted when the `Watch` is built.
_Duration = Annotated[str, BeforeValidator(_as_text), AfterValidator(_checked_duration)]
_JitterText = Annotated[str, BeforeValidator(_as_text), AfterValidator(_checked_jitter)]
_Cron = Annotated[str, BeforeValidator(_as_text), AfterValidator(_checked_cron)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _Shared(_Model):
    """What a watch and `defaults` both hold."""

    every: _Duration | None = None
    cron: _Cron | None = None
    jitter: _JitterText | None = None
    rescan: _Duration | None = None


class _Defaults(_Shared):
    source: Source | None = None


class _Watch(_Shared):
    name: str | None = None
    source: Source

    @field_validator("name")
    @classmethod
    def _named(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty (leave it out to use the repository)")
        return value


class _Retention(_Model):
    runs: _Duration | None = None


def _url(text: str) -> str:
    """An http(s) URL with a host. Never quoted back: it may hold a token or a password."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return text


_Url = Annotated[str, AfterValidator(_url)]


class _WebhookModel(_Model):
    url: _Url
    secret: str | None = None
    headers: dict[str, str] | None = None

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is not None and not value:
            raise ValueError("must not be empty (leave it out for unsigned deliveries)")
        return value


class _SlackModel(_Model):
    url: _Url


class _CommandModel(_Model):
    argv: list[str]

    @field_validator("argv")
    @classmethod
    def _argv(cls, value: list[str]) -> list[str]:
        if not value or not value[0]:
            raise ValueError("must name a program: argv: [/path/to/program, arguments...]")
        return value


class _AppriseModel(_Model):
    url: str

    @field_validator("url")
    @classmethod
    def _apprise_url(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError("must be an Apprise URL such as json://host/path")
        return value


_TARGETS: Final = ("webhook", "slack", "command", "apprise")


class _SinkModel(_Model):
    name: str | None = None
    watches: list[str] | None = None
    kinds: list[str] | None = None
    announce_initial: bool = True
    webhook: _WebhookModel | None = None
    slack: _SlackModel | None = None
    command: _CommandModel | None = None
    apprise: _AppriseModel | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or len(value) > 200 or not value.isprintable()):
            raise ValueError("must be 1 to 200 printable characters")
        return value

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, value: list[str] | None) -> list[str] | None:
        for word in value or ():
            if word not in KINDS:
                raise ValueError(f"unknown kind {word!r}: use {', '.join(KINDS)}")
        return value


class _Document(_Model):
    store: str | None = None
    workers: Annotated[int, BeforeValidator(_whole_number), Field(ge=1, le=64)] = 4
    defaults: _Defaults | None = None
    watches: list[Any]
    """Each entry is validated on its own, after `defaults` is merged under it."""
    retention: _Retention | None = None
    notify: list[Any] | None = None
    """Each sink is validated on its own, once the watches' names are known."""


# --- from a document to the config ----------------------------------------------------------


def _load(path: Path, environ: Mapping[str, str]) -> DaemonConfig:
    document = _parse(_read(path))
    if document is None:
        raise _Problem("", "empty: the top level needs `watches:`")
    if not isinstance(document, dict):
        raise _Problem("", "not a mapping of keys to values (the top level needs `watches:`)")
    expander = _Expander(environ)
    document = expander.expand(document, ())
    top = _validated(_Document, document, (), expander.substitutions)
    if top.store is not None and not top.store.strip():
        raise _Problem("store", "empty: write an SQLAlchemy URL, or leave it out for the default")
    defaults = document.get("defaults") or {}
    if top.defaults is not None:
        _check_defaults(top.defaults, defaults)
    if not top.watches:
        raise _Problem("watches", "empty: list at least one repository to watch")
    watches = tuple(
        _watch(i, entry, defaults, expander.substitutions) for i, entry in enumerate(top.watches)
    )
    _check_unique(watches, document["watches"], expander.substitutions)
    runs = top.retention.runs if top.retention is not None else None
    return DaemonConfig(
        path=path,
        store=top.store or default_store(environ),
        watches=watches,
        workers=top.workers,
        retention_runs=parse_duration(runs) if runs is not None else None,
        notify=_sinks(top.notify or [], watches, expander.substitutions),
    )


def _check_defaults(defaults: _Defaults, written: dict[Any, Any]) -> None:
    if defaults.every is not None and defaults.cron is not None:
        raise _Problem("defaults", "both every and cron are given: keep one")
    if defaults.source is not None and defaults.source.store is not None:
        raise _store_in_source({"defaults": written}, ("defaults", "source", "store"))


def _watch(
    index: int, entry: Any, defaults: dict[Any, Any], substitutions: list[_Substitution]
) -> Watch:
    where: tuple[str | int, ...] = ("watches", index)
    if not isinstance(entry, dict):
        raise _Problem(_shown_key(where), "must be a mapping")
    own = [s for s in substitutions if s.where[:2] == where or s.where[:1] == ("defaults",)]
    if "every" in entry and "cron" in entry:
        raise _Problem(_shown_key(where), "both every and cron are given: keep one")
    merged = _merged(entry, defaults)
    watch = _validated(_Watch, merged, where, own)
    source = watch.source
    if source.store is not None:
        raise _store_in_source({"watches": {index: merged}}, (*where, "source", "store"))
    if source.max_age is not None:
        key = _written_key({"watches": {index: merged}}, (*where, "source", "max_age"))
        raise _Problem(key, "max_age is for Concourse checks: a watch polls on its schedule")
    if not source.repository:
        key = _written_key({"watches": {index: merged}}, (*where, "source", "repository"))
        raise _Problem(key, "required: the image repository to watch, e.g. ghcr.io/acme/app")
    if watch.every is None and watch.cron is None:
        raise _Problem(_shown_key(where), "no schedule: give every or cron, here or in defaults")
    unresolved = f"watches[{index}].source.repository"
    try:
        login = cloud_login(source, eager=False)
        spec = watch_spec(source, unresolved=unresolved, mirrored=True, login=login)
    except ConfigError as exc:
        message = str(exc)
        key, _, reason = message.partition(": ")
        if key != unresolved:
            key, reason = f"watches[{index}].source", message
        raise _Problem(key, _hidden(reason, own)) from None
    rescan = parse_duration(watch.rescan) if watch.rescan is not None else DEFAULT_RESCAN
    return Watch(
        name=watch.name if watch.name is not None else source.repository,
        spec=replace(spec, rescan=rescan),
        every=parse_duration(watch.every) if watch.every is not None else None,
        cron=watch.cron,
        jitter=_jitter(watch.jitter) if watch.jitter is not None else Jitter(),
        login=login,
    )


def _merged(entry: dict[Any, Any], defaults: dict[Any, Any]) -> dict[Any, Any]:
    """`defaults` under the watch's own keys; a watch's schedule replaces the defaults' whole."""
    scheduled = "every" in entry or "cron" in entry
    merged = {
        key: value
        for key, value in defaults.items()
        if key not in entry and not (scheduled and key in ("every", "cron"))
    }
    merged.update(entry)
    inherited, source = defaults.get("source"), entry.get("source")
    if isinstance(inherited, dict) and isinstance(source, dict):
        # Source keys match case-insensitively, so `Username` in a watch replaces `username`.
        written = {str(key).lower() for key in source}
        kept = {k: v for k, v in inherited.items() if str(k).lower() not in written}
        merged["source"] = {**kept, **source}
    return merged


def _store_in_source(document: Any, where: tuple[str | int, ...]) -> _Problem:
    key = _written_key(document, where)
    return _Problem(key, "the store is top-level: write `store:` at the top of the config")


def _check_unique(
    watches: Sequence[Watch], entries: list[Any], substitutions: list[_Substitution]
) -> None:
    first: dict[str, int] = {}
    for index, watch in enumerate(watches):
        if watch.name not in first:
            first[watch.name] = index
            continue
        named = "name" in entries[index]
        key = f"watches[{index}]" + (".name" if named else "")
        own = [s for s in substitutions if s.where[:2] == ("watches", index)]
        reason = (
            f"the name {watch.name!r} is already the name of watches[{first[watch.name]}]: "
            "names are unique (a watch without `name` is named after its repository)"
        )
        raise _Problem(key, _hidden(reason, own))


def _sinks(
    entries: list[Any], watches: Sequence[Watch], substitutions: list[_Substitution]
) -> tuple[SinkSettings, ...]:
    """Each `notify` entry checked; names unique (a sink without `name` is `<type>-<index>`)."""
    sinks: list[SinkSettings] = []
    first: dict[str, int] = {}
    for index, entry in enumerate(entries):
        sink = _sink(index, entry, watches, substitutions)
        if sink.name in first:
            named = isinstance(entry, dict) and "name" in entry
            raise _Problem(
                f"notify[{index}]" + (".name" if named else ""),
                f"the name {sink.name!r} is already the name of notify[{first[sink.name]}]: "
                "sink names are unique (a sink without `name` is named <type>-<index>)",
            )
        first[sink.name] = index
        sinks.append(sink)
    return tuple(sinks)


def _sink(
    index: int, entry: Any, watches: Sequence[Watch], substitutions: list[_Substitution]
) -> SinkSettings:
    where: tuple[str | int, ...] = ("notify", index)
    if not isinstance(entry, dict):
        raise _Problem(_shown_key(where), "must be a mapping")
    own = [s for s in substitutions if s.where[:2] == where]
    sink = _validated(_SinkModel, entry, where, own)
    given = [key for key in _TARGETS if getattr(sink, key) is not None]
    if len(given) != 1:
        also = f" (given: {', '.join(given)})" if given else ""
        raise _Problem(_shown_key(where), f"give exactly one of {', '.join(_TARGETS)}{also}")
    by_name = {watch.name: watch for watch in watches}
    for position, name in enumerate(sink.watches or ()):
        if name not in by_name:
            reason = f"no watch is named {name!r} (a watch without `name` is its repository)"
            raise _Problem(_shown_key((*where, "watches", position)), _hidden(reason, own))
    followed = [by_name[name] for name in sink.watches] if sink.watches else list(watches)
    return SinkSettings(
        name=sink.name if sink.name is not None else f"{given[0]}-{index}",
        target=_target(sink, where),
        repositories=frozenset(watch.spec.repository.name for watch in followed),
        watches=frozenset(watch.name for watch in followed),
        kinds=frozenset(sink.kinds) if sink.kinds is not None else None,
        announce_initial=sink.announce_initial,
    )


def _target(sink: _SinkModel, where: tuple[str | int, ...]) -> Target:
    if sink.webhook is not None:
        hook = sink.webhook
        return Webhook(hook.url, hook.secret, dict(hook.headers or {}))
    if sink.slack is not None:
        return Slack(sink.slack.url)
    if sink.command is not None:
        return Command(tuple(sink.command.argv))
    assert sink.apprise is not None
    if importlib.util.find_spec("apprise") is None:
        raise _Problem(
            _shown_key((*where, "apprise")),
            "Apprise is not installed: pip install 'regwatch[apprise]'",
        )
    return Apprise(sink.apprise.url)


# --- validation errors as one line ----------------------------------------------------------


def _validated(
    model: type[_M], data: Any, where: tuple[str | int, ...], substitutions: list[_Substitution]
) -> _M:
    """`data` as `model`, or its first error as a `_Problem` naming the key as written.

    At the top (`where` empty) only the variables of the failing key's section can be in the
    reason; below, the caller passes the substitutions that can.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
    document: Any = data
    for part in reversed(where):
        document = {part: document}
    loc = (*where, *error["loc"])
    key = _written_key(document, loc)
    unknown = re.fullmatch(r'Value error, unknown field "(.*)"', error["msg"], re.DOTALL)
    if unknown is not None:
        raise _Problem(f"{key}.{unknown[1]}" if key else unknown[1], "unknown field")
    if loc == ("defaults", "name") and error["type"] == "extra_forbidden":
        raise _Problem(key, "a name belongs to one watch: defaults cannot give one")
    reason = _reason(error)
    if error["type"] == "value_error":
        own = substitutions if where else [s for s in substitutions if s.where[:1] == loc[:1]]
        reason = _hidden(reason, own)
    raise _Problem(key, reason)


_TYPES: Final = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "invalid_key": "unknown field",
}


def _reason(error: ErrorDetails) -> str:
    fixed = _TYPES.get(error["type"])
    if fixed is not None:
        return fixed
    bounds = error.get("ctx") or {}
    if error["type"] == "greater_than_equal":
        return f"must be at least {bounds['ge']}"
    if error["type"] == "less_than_equal":
        return f"must be at most {bounds['le']}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return message[:1].lower() + message[1:]


def _written_key(document: Any, loc: Sequence[int | str]) -> str:
    """`watches[2].source.Tag_Regex`: each key as the user wrote it (source keys match any case)."""
    node: Any = document
    parts: list[str | int] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(part)
            node = node.get(part) if isinstance(node, dict) else _item(node, part)
            continue
        key: Any = part
        if isinstance(node, dict) and part not in node:
            key = next((k for k in node if str(k).lower() == part.lower()), part)
        parts.append(str(key))
        node = node.get(key) if isinstance(node, dict) else None
    return _shown_key(tuple(parts))


def _item(node: Any, index: int) -> Any:
    return node[index] if isinstance(node, list) and 0 <= index < len(node) else None


def _shown_key(where: Sequence[Any]) -> str:
    text = ""
    for part in where:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            text += f".{_key_text(part)}" if text else _key_text(part)
    return text


def _key_text(key: Any) -> Any:
    """A number or null used as a key, as the YAML wrote it; other keys as they are."""
    if isinstance(key, JSONNumber):
        return key.text
    if key is None:
        return "null"
    return key

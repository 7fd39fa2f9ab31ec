"""The fields users type: Concourse source, version and request payloads, decoded strictly.

Decoding follows the Go resource (spec §0.2–0.3): unknown keys are errors at any depth, keys
match case-insensitively, empty strings and `null` mean "not set", types are strict as Go's
decoder is (`"yes"` is not a bool, `"8"` not an int), and `tag` may be a string, number or
bool, a number kept as its raw JSON text (`1e5` stays `1e5`). Tags and digests, and the
repository, are checked here, before any command sends a request; a bad regex or constraint
fails only when the mode that uses it runs, as in the original.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from regwatch.durations import parse_duration
from regwatch.errors import ConfigError
from regwatch.refs import parse_digest, parse_tag

DEFAULT_CONCURRENCY = 8


@dataclass(frozen=True)
class JSONNumber:
    """A JSON number as written: what `tag` keeps, and what an int field converts."""

    text: str


_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]{0,18})")
"""An integer literal small enough for Go's int (and far below Python's int-string limit)."""


class _Payload(BaseModel):
    """Frozen, case-insensitive keys, strict types; `null`, and `""` for most fields, mean unset."""

    # defer_build: a model's validator is built when it first validates, so a check never
    # pays for the get and put requests' models (~15 ms of its start-up, measured).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)
    _keep_empty: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _match_keys(cls, data: Any) -> Any:
        """Keys case-insensitively; `null` and `""` dropped; JSON arrays as tuples."""
        if not isinstance(data, dict):
            return data
        names = {name.lower(): name for name in cls.model_fields}
        matched: dict[str, Any] = {}
        for key, value in data.items():
            name = names.get(str(key).lower())
            if name is None:
                raise ValueError(f'unknown field "{key}"')
            if value is None or (value == "" and name not in cls._keep_empty):
                continue
            matched[name] = _as_field(value, cls.model_fields[name].annotation)
        return matched


_M = TypeVar("_M", bound=_Payload)


def _as_field(value: Any, annotation: Any) -> Any:
    """A decoded JSON value in the shape strict validation expects for the field."""
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, JSONNumber) and annotation is int and _INTEGER.fullmatch(value.text):
        return int(value.text)
    return value


class Platform(_Payload):
    architecture: str | None = None
    os: str | None = None


class RegistryMirror(_Payload):
    host: str | None = None
    username: str | None = None
    password: str | None = Field(default=None, repr=False)


class ContentTrust(_Payload):
    server: str | None = None
    repository_key_id: str | None = None
    repository_key: str | None = Field(default=None, repr=False)
    repository_passphrase: str | None = Field(default=None, repr=False)
    tls_key: str | None = Field(default=None, repr=False)
    tls_cert: str | None = None
    scopes: str | None = None
    username: str | None = None
    password: str | None = Field(default=None, repr=False)


class Source(_Payload):
    """`source:` of a registry-image resource, plus regwatch's own `store` and `concurrency`."""

    repository: str = ""
    insecure: bool = False
    tag: str | None = None
    tag_regex: str | None = None
    created_at_sort: bool = False
    variant: str | None = None
    semver_constraint: str | None = None
    pre_releases: bool = False
    pre_release_prefixes: tuple[str, ...] = ()
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = Field(default=None, repr=False)
    aws_session_token: str | None = Field(default=None, repr=False)
    aws_region: str | None = None
    aws_role_arn: str | None = None
    aws_role_arns: tuple[str, ...] = ()
    aws_account_id: str | None = None
    aws_ecr_registry_id: str | None = None
    azure_acr: bool = False
    azure_client_id: str | None = None
    azure_tenant_id: str | None = None
    azure_environment: str | None = None
    registry_mirror: RegistryMirror | None = None
    content_trust: ContentTrust | None = None
    ca_certs: tuple[str, ...] = ()
    platform: Platform | None = None
    label_regex: str | None = None
    annotation_regex: str | None = None
    debug: bool = False
    store: str | None = None
    """An SQLAlchemy URL: record observations there instead of in a throw-away store."""
    concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1, le=64)
    """How many digests a check resolves at once."""
    max_age: str | None = None
    """How old the store's newest successful poll may be for a check to be answered from the
    log without a request (`2m`, `30s`, `1h30m`); needs `store`."""

    _keep_empty: ClassVar[frozenset[str]] = frozenset({"repository"})

    @field_validator("tag", mode="before")
    @classmethod
    def _tag_as_text(cls, value: Any) -> Any:
        """A string, a number as its raw JSON text (`42.10` stays `42.10`), or a bool."""
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, JSONNumber):
            text = value.text
        elif isinstance(value, int):
            text = str(value)
        elif isinstance(value, str):
            text = value
        else:
            return value  # an array or object: strict validation says it is no string
        try:
            return parse_tag(text)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("max_age")
    @classmethod
    def _max_age_is_duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)  # its ValueError names the problem; the path names the field
        return value


class Version(_Payload):
    """A Concourse version of this resource: both keys are always emitted."""

    tag: str = ""
    digest: str = ""

    _keep_empty: ClassVar[frozenset[str]] = frozenset({"tag", "digest"})


class _Request(_Payload):
    """A whole request: what every command needs is checked before it sends anything."""

    source: Source

    @model_validator(mode="after")
    def _needs_repository(self) -> Self:
        if not self.source.repository:
            raise ValueError(
                "source.repository is required: the image repository, e.g. ghcr.io/acme/app"
            )
        if self.source.max_age is not None and self.source.store is None:
            raise ValueError(
                "source.max_age needs source.store: a check is answered from the store's log"
                " (the fleet's database); set store, or remove max_age"
            )
        return self


def _check_version(version: Version, *, digest_required: bool) -> None:
    """The cursor's tag and digest are sent to the registry: check them first (issue 8)."""
    field = "tag"
    try:
        if version.tag:
            parse_tag(version.tag)
        field = "digest"
        if version.digest or digest_required:
            parse_digest(version.digest)
    except ConfigError as exc:
        raise ValueError(f"version.{field}: {exc}") from None


class CheckRequest(_Request):
    version: Version | None = None

    @model_validator(mode="after")
    def _valid_cursor(self) -> Self:
        if self.version is not None:
            _check_version(self.version, digest_required=False)
        return self


class GetParams(_Payload):
    """`params:` of a get step."""

    format: str = "rootfs"
    skip_download: bool = False
    platform: Platform | None = None


class InRequest(_Request):
    params: GetParams = Field(default_factory=GetParams)
    version: Version = Field(default_factory=Version)

    @model_validator(mode="after")
    def _valid_version(self) -> Self:
        _check_version(self.version, digest_required=True)
        return self


class PutParams(_Payload):
    """`params:` of a put step."""

    image: str | None = None
    version: str | None = None
    bump_aliases: bool = False
    additional_tags: str | None = None
    tag_prefix: str | None = None


class OutRequest(_Request):
    params: PutParams = Field(default_factory=PutParams)

    @model_validator(mode="after")
    def _needs_image(self) -> Self:
        if not self.params.image:
            raise ValueError(
                "params.image is required: the path, below the put's directory, of the image "
                "tarball or OCI layout to push"
            )
        return self


def parse_out_request(text: str | bytes) -> OutRequest:
    return decode(OutRequest, text)


def parse_in_request(text: str | bytes) -> InRequest:
    return decode(InRequest, text)


def parse_check_request(text: str | bytes) -> CheckRequest:
    return decode(CheckRequest, text)


def decode(model: type[_M], text: str | bytes) -> _M:
    """Decode a JSON request; every problem becomes one `invalid payload: …` line."""
    try:
        data = json.loads(
            text, parse_float=JSONNumber, parse_int=JSONNumber, parse_constant=_no_constant
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"invalid payload: {_json_reason(exc)}") from None
    except RecursionError:
        raise ConfigError("invalid payload: malformed JSON: nested too deeply") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid payload: {_validation_reason(exc)}") from None
    except RecursionError:
        raise ConfigError("invalid payload: nested too deeply") from None


class _NotJSON(ValueError):
    """`NaN` and `Infinity`, which Python's decoder accepts and JSON (and Go) do not."""


def _no_constant(name: str) -> Any:
    raise _NotJSON(f"malformed JSON: {name} is not a JSON value")


def _json_reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"malformed JSON: {exc.msg.lower()} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, _NotJSON):
        return str(exc)
    return "malformed JSON: not UTF-8 text"


_GO_TYPES = {
    "bool_type": "bool",
    "int_type": "int",
    "string_type": "string",
    "tuple_type": "[]string",
    "model_type": "object",
}


def _validation_reason(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = _path(error["loc"])
    go_type = _GO_TYPES.get(error["type"])
    if go_type is not None:
        kind = _json_kind(error["input"], go_type)
        into = f"Go struct field {where}" if where else "Go value"
        return f"json: cannot unmarshal {kind} into {into} of type {go_type}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if message.startswith("unknown field"):
        return f"json: {message}" + (f" in {where}" if where else "")
    message = message[:1].lower() + message[1:]
    return f"{where}: {message}" if where else message


def _path(loc: tuple[int | str, ...]) -> str:
    """`source.ca_certs[0]`: keys as written in the schema, list positions 0-based."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _json_kind(value: Any, go_type: str) -> str:
    """What Go's decoder calls the JSON value: `string`, `number 8.5`, `array`, …"""
    if isinstance(value, JSONNumber):
        shown = go_type == "int" and len(value.text) <= 32
        return f"number {value.text}" if shown else "number"
    kinds = ((bool, "bool"), (str, "string"), (tuple | list, "array"), (dict, "object"))
    return next((kind for cls, kind in kinds if isinstance(value, cls)), "null")

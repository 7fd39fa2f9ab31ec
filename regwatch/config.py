"""The fields users type: Concourse source, version and request payloads, decoded strictly.

Decoding follows the Go resource (spec §0.2–0.3): unknown keys are errors at any depth, keys
match case-insensitively, empty strings mean "not set", and `tag` may be any JSON value, kept
as its raw JSON text. Fields are not validated beyond their types here: a bad regex or
constraint fails only when the mode that uses it runs, as in the original.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from regwatch.errors import ConfigError

DEFAULT_CONCURRENCY = 8


class _Payload(BaseModel):
    """Strict, frozen, case-insensitive keys; `""` for an optional string means unset."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    _keep_empty: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _match_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        names = {name.lower(): name for name in cls.model_fields}
        matched: dict[str, Any] = {}
        for key, value in data.items():
            name = names.get(str(key).lower())
            if name is None:
                raise ValueError(f'unknown field "{key}"')
            if value == "" and name not in cls._keep_empty:
                continue
            matched[name] = value
        return matched


_M = TypeVar("_M", bound=_Payload)


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

    _keep_empty: ClassVar[frozenset[str]] = frozenset({"repository"})

    @field_validator("tag", mode="before")
    @classmethod
    def _tag_as_text(cls, value: Any) -> Any:
        """Any JSON value is the tag, as its JSON text (`42.10` stays `"42.10"`)."""
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | Decimal):
            return str(value)
        return json.dumps(value, separators=(",", ":"), default=str)


class Version(_Payload):
    """A Concourse version of this resource: both keys are always emitted."""

    tag: str = ""
    digest: str = ""

    _keep_empty: ClassVar[frozenset[str]] = frozenset({"tag", "digest"})


class CheckRequest(_Payload):
    source: Source
    version: Version | None = None


class GetParams(_Payload):
    """`params:` of a get step."""

    format: str = "rootfs"
    skip_download: bool = False
    platform: Platform | None = None


class InRequest(_Payload):
    source: Source
    params: GetParams = Field(default_factory=GetParams)
    version: Version = Field(default_factory=Version)


class PutParams(_Payload):
    """`params:` of a put step."""

    image: str | None = None
    version: str | None = None
    bump_aliases: bool = False
    additional_tags: str | None = None
    tag_prefix: str | None = None


class OutRequest(_Payload):
    source: Source
    params: PutParams = Field(default_factory=PutParams)


def parse_out_request(text: str | bytes) -> OutRequest:
    return decode(OutRequest, text)


def parse_in_request(text: str | bytes) -> InRequest:
    return decode(InRequest, text)


def parse_check_request(text: str | bytes) -> CheckRequest:
    return decode(CheckRequest, text)


def decode(model: type[_M], text: str | bytes) -> _M:
    """Decode a JSON request; every problem becomes one `invalid payload: …` line."""
    try:
        data = json.loads(text, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"invalid payload: {_json_reason(exc)}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid payload: {_validation_reason(exc)}") from None


def _json_reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"malformed JSON: {exc.msg.lower()} at line {exc.lineno} column {exc.colno}"
    return "malformed JSON: not UTF-8 text"


def _validation_reason(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if message.startswith("unknown field"):
        return f"json: {message}" + (f" in {where}" if where else "")
    return f"{where}: {message.lower()}" if where else message.lower()

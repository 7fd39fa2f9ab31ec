"""Image manifests, indexes and configs as typed values, validated where their bytes arrive.

Whatever a registry (or a layout on disk) sends is parsed here, once, into frozen models, or
refused with one `ImageError` line that names the document: "the registry sent an invalid
manifest …: layers: input should be a valid array". Nothing downstream handles raw dicts.

The models are as strict as Go's decoder in go-containerregistry (a `"size": "12"` or a
`"layers": 5` is refused; a size is a non-negative int64) and as lenient as real registries
need: unknown fields are ignored, a top-level `mediaType` is optional (umoci leaves it out),
Docker schema 2 and OCI share one shape, and `null` stands for an absent list or map.

The JSON parser is pydantic's: nesting deeper than a couple of hundred levels, numbers out of
range and invalid UTF-8 are errors like any other, never a crash. Callers keep the exact bytes
beside the typed value; a manifest is never re-serialised.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue
from pydantic import ValidationError as _ValidationError

from regwatch.errors import ImageError
from regwatch.image.mediatypes import MAX_DOCUMENT_BYTES as MAX_DOCUMENT_BYTES
from regwatch.image.mediatypes import parse_json
from regwatch.refs import is_digest

REGISTRY = "the registry"
"""The sender named in errors about documents a registry sent."""

_INT64_MAX = 2**63 - 1
_SHOWN_KEY = re.compile(r"[A-Za-z0-9_.:/@+-]{1,64}")
_MAX_SHOWN = 64


def _digest(value: str) -> str:
    if not is_digest(value):
        raise ValueError("not a sha256 or sha512 digest")
    return value


Digest = Annotated[str, AfterValidator(_digest)]
Size = Annotated[int, Field(ge=0, le=_INT64_MAX)]


class _Document(BaseModel):
    model_config = ConfigDict(
        frozen=True, strict=True, extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )


class PlatformSpec(_Document):
    """The `platform` of an index entry."""

    os: str
    architecture: str
    variant: str | None = None


class Descriptor(_Document):
    """A pointer to a blob or manifest: what it is, its digest and its exact size."""

    media_type: str = Field("", alias="mediaType")
    digest: Digest
    size: Size
    platform: PlatformSpec | None = None
    annotations: dict[str, str] | None = None


class ImageManifest(_Document):
    """A Docker schema-2 or OCI image manifest."""

    schema_version: int | None = Field(None, alias="schemaVersion")
    media_type: str | None = Field(None, alias="mediaType")
    config: Descriptor
    layers: tuple[Descriptor, ...] | None = None
    annotations: dict[str, str] | None = None

    @property
    def layer_list(self) -> tuple[Descriptor, ...]:
        return self.layers or ()


class Index(_Document):
    """An OCI image index or a Docker manifest list."""

    schema_version: int | None = Field(None, alias="schemaVersion")
    media_type: str | None = Field(None, alias="mediaType")
    manifests: tuple[Descriptor, ...] | None = None
    annotations: dict[str, str] | None = None

    @property
    def entries(self) -> tuple[Descriptor, ...]:
        return self.manifests or ()


class ContainerConfig(_Document):
    """The part of an image config `in` reports: how the image runs, and its labels.

    A `null` label value counts as empty, as Go decodes it.
    """

    cmd: list[str] | None = Field(None, alias="Cmd")
    entrypoint: list[str] | None = Field(None, alias="Entrypoint")
    env: list[str] | None = Field(None, alias="Env")
    user: str | None = Field(None, alias="User")
    labels: dict[str, str | None] | None = Field(None, alias="Labels")


class ImageConfig(_Document):
    """An image config blob; `created` is kept as text (an unreadable time is no time)."""

    created: str | None = None
    config: ContainerConfig | None = None

    @property
    def labels(self) -> dict[str, str]:
        labels = (self.config.labels if self.config else None) or {}
        return {key: value or "" for key, value in labels.items()}


_Model = TypeVar("_Model", bound=_Document)


def parse_image_manifest(body: bytes, what: str, *, sender: str | None = REGISTRY) -> ImageManifest:
    """`what` names the document in errors: "manifest <reference>"."""
    return _parse(ImageManifest, body, what, sender)


def parse_index(body: bytes, what: str, *, sender: str | None = REGISTRY) -> Index:
    return _parse(Index, body, what, sender)


def parse_image_config(body: bytes, what: str, *, sender: str | None = REGISTRY) -> ImageConfig:
    return _parse(ImageConfig, body, what, sender)


def load_json(body: bytes, what: str) -> JsonValue:
    """Any JSON document, parsed safely; `what` starts the error line ("manifest.json …")."""
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ImageError(f"{what} is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        return parse_json(body)
    except _ValidationError as exc:
        raise ImageError(f"{what} is {_reason(exc)}") from None


def too_large(what: str, size: int, *, sender: str | None = REGISTRY) -> ImageError:
    """The error for a document whose (declared) size passes `MAX_DOCUMENT_BYTES`."""
    return ImageError(
        f"{_invalid(what, sender)}: {size} bytes, more than the {MAX_DOCUMENT_BYTES} bytes allowed"
    )


def _parse(model: type[_Model], body: bytes, what: str, sender: str | None) -> _Model:
    if len(body) > MAX_DOCUMENT_BYTES:
        raise too_large(what, len(body), sender=sender)
    try:
        return model.model_validate_json(body, strict=True)
    except _ValidationError as exc:
        raise ImageError(f"{_invalid(what, sender)}: {_reason(exc)}") from None


def _invalid(what: str, sender: str | None) -> str:
    return f"{sender} sent an invalid {what}" if sender else f"invalid {what}"


def _reason(exc: _ValidationError) -> str:
    """The first problem pydantic found, as `where: what` in one short line."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return f"not JSON: {first.get('ctx', {}).get('error', 'malformed')}"
    message = str(first["msg"]).removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    if first["type"] == "model_type" and not first["loc"]:
        message = "not a JSON object"
    where = _location(first["loc"])
    others = len(errors) - 1
    more = f" (and {others} more problem{'s' if others > 1 else ''})" if others else ""
    return f"{where}: {message}{more}" if where else f"{message}{more}"


def _location(loc: tuple[Any, ...]) -> str:
    """`layers[0].size`; keys that are not plain names are quoted, escaped and shortened."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        key = str(part)
        if not _SHOWN_KEY.fullmatch(key):
            shown = key[:_MAX_SHOWN] + ("…" if len(key) > _MAX_SHOWN else "")
            key = "[" + repr(shown).encode("ascii", "backslashreplace").decode() + "]"
            text += key
            continue
        text += f".{key}" if text else key
    return text

"""Registry JSON made into the image model (`model`), validated where the bytes arrive.

Whatever a registry (or a layout on disk) sends is parsed here, once, into frozen values, or
refused with one `ImageError` line that names the document and the first problem: "the
registry sent an invalid manifest …: layers: input should be a valid array". Nothing
downstream handles raw dicts.

As strict as Go's decoder in go-containerregistry (a `"size": "12"` or a `"layers": 5` is
refused; a size is a non-negative int64) and as lenient as real registries need: unknown
fields are ignored, a top-level `mediaType` is optional (umoci leaves it out), Docker schema 2
and OCI share one shape, and `null` stands for an absent list or map.

The bytes go through pydantic-core's JSON parser (`mediatypes.parse_json`): nesting deeper
than a couple of hundred levels, numbers out of range and invalid UTF-8 are errors like any
other, never a crash. The checks themselves are a few lines of plain Python over the parsed
values, so reading a manifest builds no validation schema at start-up. Callers keep the
exact bytes beside the typed value; a manifest is never re-serialised.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from regwatch.errors import ImageError
from regwatch.image.mediatypes import MAX_DOCUMENT_BYTES as MAX_DOCUMENT_BYTES
from regwatch.image.mediatypes import parse_json
from regwatch.image.model import (
    ContainerConfig,
    Descriptor,
    ImageConfig,
    ImageManifest,
    Index,
    Platform,
)
from regwatch.refs import is_digest

REGISTRY = "the registry"
"""The sender named in errors about documents a registry sent."""

_INT64_MAX = 2**63 - 1
_SHOWN_KEY = re.compile(r"[A-Za-z0-9_.:/@+-]{1,64}")
_MAX_SHOWN = 64

Location = tuple[str | int, ...]


def parse_image_manifest(body: bytes, what: str, *, sender: str | None = REGISTRY) -> ImageManifest:
    """`what` names the document in errors: "manifest <reference>"."""
    return _Decoder.run(body, what, sender, _Decoder.image_manifest)


def parse_index(body: bytes, what: str, *, sender: str | None = REGISTRY) -> Index:
    return _Decoder.run(body, what, sender, _Decoder.index)


def parse_image_config(body: bytes, what: str, *, sender: str | None = REGISTRY) -> ImageConfig:
    return _Decoder.run(body, what, sender, _Decoder.image_config)


def load_json(body: bytes, what: str) -> object:
    """Any JSON document, parsed safely; `what` starts the error line ("manifest.json …")."""
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ImageError(f"{what} is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        return parse_json(body)
    except ValueError as exc:
        raise ImageError(f"{what} is not JSON: {_parser_error(exc)}") from None


def too_large(what: str, size: int, *, sender: str | None = REGISTRY) -> ImageError:
    """The error for a document whose (declared) size passes `MAX_DOCUMENT_BYTES`."""
    return ImageError(
        f"{_invalid(what, sender)}: {size} bytes, more than the {MAX_DOCUMENT_BYTES} bytes allowed"
    )


class _Invalid(Exception):
    """A value that cannot be what its place asks for (already recorded as a problem)."""


T = TypeVar("T")
Decode = Callable[[object, Location], T]


class _Fields:
    """The fields of one JSON object, each checked even after another failed, so that the
    error can count every problem; leaving the block raises `_Invalid` if any failed."""

    def __init__(self, problems: list[tuple[Location, str]], at: Location) -> None:
        self.problems = problems
        self.at = at
        self.failed = False

    def __enter__(self) -> _Fields:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None and self.failed:
            raise _Invalid

    def required(self, parent: dict[str, Any], key: str, decode: Decode[T]) -> T:
        if key not in parent:
            self.problems.append(((*self.at, key), "field required"))
            self.failed = True
            return cast(T, None)  # never used: leaving the block raises
        return cast(T, self._checked(parent[key], key, decode))

    def optional(self, parent: dict[str, Any], key: str, decode: Decode[T]) -> T | None:
        """None when the key is missing or `null`, as Go leaves a nil field."""
        value = parent.get(key)
        return None if value is None else self._checked(value, key, decode)

    def _checked(self, value: object, key: str, decode: Decode[T]) -> T | None:
        try:
            return decode(value, (*self.at, key))
        except _Invalid:
            self.failed = True
            return None


class _Decoder:
    """One document's checks; every problem is recorded, the first one is reported."""

    def __init__(self) -> None:
        self.problems: list[tuple[Location, str]] = []

    @classmethod
    def run(
        cls,
        body: bytes,
        what: str,
        sender: str | None,
        decode: Callable[[_Decoder, dict[str, Any]], T],
    ) -> T:
        if len(body) > MAX_DOCUMENT_BYTES:
            raise too_large(what, len(body), sender=sender)
        try:
            document = parse_json(body)
        except ValueError as exc:
            raise ImageError(f"{_invalid(what, sender)}: not JSON: {_parser_error(exc)}") from None
        if not isinstance(document, dict):
            raise ImageError(f"{_invalid(what, sender)}: not a JSON object")
        decoder = cls()
        try:
            return decode(decoder, document)
        except _Invalid:
            raise ImageError(f"{_invalid(what, sender)}: {decoder.reason()}") from None

    def fields(self, at: Location) -> _Fields:
        return _Fields(self.problems, at)

    # -- the documents --------------------------------------------------------------------------

    def image_manifest(self, document: dict[str, Any]) -> ImageManifest:
        with self.fields(()) as field:
            config = field.required(document, "config", self.descriptor)
            layers = field.optional(document, "layers", self.descriptors)
            schema_version = field.optional(document, "schemaVersion", self.integer)
            media_type = field.optional(document, "mediaType", self.string)
            annotations = field.optional(document, "annotations", self.string_map)
        return ImageManifest(config, layers or (), schema_version, media_type, annotations)

    def index(self, document: dict[str, Any]) -> Index:
        with self.fields(()) as field:
            manifests = field.optional(document, "manifests", self.descriptors)
            schema_version = field.optional(document, "schemaVersion", self.integer)
            media_type = field.optional(document, "mediaType", self.string)
            annotations = field.optional(document, "annotations", self.string_map)
        return Index(manifests or (), schema_version, media_type, annotations)

    def image_config(self, document: dict[str, Any]) -> ImageConfig:
        with self.fields(()) as field:
            created = field.optional(document, "created", self.string)
            config = field.optional(document, "config", self.container_config)
        return ImageConfig(created, config)

    # -- their parts ----------------------------------------------------------------------------

    def descriptor(self, value: object, at: Location) -> Descriptor:
        entry = self.mapping(value, at)
        with self.fields(at) as field:
            media_type = field.optional(entry, "mediaType", self.string)
            digest = field.required(entry, "digest", self.digest)
            size = field.required(entry, "size", self.size)
            platform = field.optional(entry, "platform", self.platform)
            annotations = field.optional(entry, "annotations", self.string_map)
        return Descriptor(media_type or "", digest, size, platform, annotations)

    def descriptors(self, value: object, at: Location) -> tuple[Descriptor, ...]:
        return tuple(self.each(value, at, self.descriptor))

    def platform(self, value: object, at: Location) -> Platform:
        entry = self.mapping(value, at)
        with self.fields(at) as field:
            os = field.required(entry, "os", self.string)
            architecture = field.required(entry, "architecture", self.string)
            variant = field.optional(entry, "variant", self.string)
        return Platform(os, architecture, variant)

    def container_config(self, value: object, at: Location) -> ContainerConfig:
        entry = self.mapping(value, at)
        with self.fields(at) as field:
            cmd = field.optional(entry, "Cmd", self.strings)
            entrypoint = field.optional(entry, "Entrypoint", self.strings)
            env = field.optional(entry, "Env", self.strings)
            user = field.optional(entry, "User", self.string)
            labels = field.optional(entry, "Labels", self.labels)
        return ContainerConfig(cmd, entrypoint, env, user, labels)

    # -- JSON values ----------------------------------------------------------------------------

    def mapping(self, value: object, at: Location) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.invalid(at, "input should be an object")
        return value

    def each(self, value: object, at: Location, decode: Decode[T]) -> list[T]:
        """Every item of an array, each checked; one bad item makes the array unusable."""
        if not isinstance(value, list):
            raise self.invalid(at, "input should be a valid array")
        items: list[T] = []
        failed = False
        for position, item in enumerate(value):
            try:
                items.append(decode(item, (*at, position)))
            except _Invalid:
                failed = True
        if failed:
            raise _Invalid
        return items

    def string(self, value: object, at: Location) -> str:
        if not isinstance(value, str):
            raise self.invalid(at, "input should be a valid string")
        return value

    def strings(self, value: object, at: Location) -> tuple[str, ...]:
        return tuple(self.each(value, at, self.string))

    def string_map(self, value: object, at: Location) -> Mapping[str, str]:
        entries = self.mapping(value, at)
        bad = [key for key, item in entries.items() if not isinstance(item, str)]
        for key in bad:
            self.problems.append(((*at, key), "input should be a valid string"))
        if bad:
            raise _Invalid
        return entries

    def labels(self, value: object, at: Location) -> Mapping[str, str]:
        """Labels as Go decodes them: a `null` value is an empty one."""
        entries = self.mapping(value, at)
        return self.string_map({key: "" if v is None else v for key, v in entries.items()}, at)

    def integer(self, value: object, at: Location) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.invalid(at, "input should be a valid integer")
        return value

    def size(self, value: object, at: Location) -> int:
        size = self.integer(value, at)
        if size < 0:
            raise self.invalid(at, "input should be greater than or equal to 0")
        if size > _INT64_MAX:
            raise self.invalid(at, f"input should be less than or equal to {_INT64_MAX}")
        return size

    def digest(self, value: object, at: Location) -> str:
        digest = self.string(value, at)
        if not is_digest(digest):
            raise self.invalid(at, "not a sha256 or sha512 digest")
        return digest

    def invalid(self, at: Location, message: str) -> _Invalid:
        self.problems.append((at, message))
        return _Invalid()

    def reason(self) -> str:
        """The first problem as `where: what`, and how many more there were, in one line."""
        where, message = self.problems[0]
        others = len(self.problems) - 1
        more = f" (and {others} more problem{'s' if others > 1 else ''})" if others else ""
        shown = _location(where)
        return f"{shown}: {message}{more}" if shown else f"{message}{more}"


def _invalid(what: str, sender: str | None) -> str:
    return f"{sender} sent an invalid {what}" if sender else f"invalid {what}"


def _parser_error(exc: ValueError) -> str:
    """The parser's reason and where: "EOF while parsing a value at line 1 column 0"."""
    return str(exc) or "malformed"


def _location(loc: Location) -> str:
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

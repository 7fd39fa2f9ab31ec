"""The image model: descriptors, manifests, indexes and configs, as plain frozen values.

The shapes of go-containerregistry's `v1` package (`Descriptor`, `Manifest`, `IndexManifest`,
`ConfigFile`, `Platform`), cut to the fields regwatch reads. Every part of regwatch that
speaks of an image speaks these: a manifest HEAD gives a `Descriptor`, a parsed index holds
`Descriptor`s with their `Platform`, a layer to pull or to write into `image.tar` is one.

Pure data, free of pydantic: `digest` and `tags` hand out descriptors without paying for a
validation library. Bytes become these values only through `documents`, which checks them
as strictly as Go's decoder would; a value built here by hand is trusted as built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Platform:
    """What an index entry runs on; `linux/arm64/v8` when written out."""

    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        parts = [self.os, self.architecture, *([self.variant] if self.variant else [])]
        return "/".join(parts)


@dataclass(frozen=True)
class Descriptor:
    """A pointer to a blob or manifest: what it is, its digest and its exact size.

    Only an index entry carries a `platform`; `annotations` are None when the JSON had none.
    """

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] | None = None


@dataclass(frozen=True)
class ImageManifest:
    """A Docker schema-2 or OCI image manifest (`layers` is empty when the JSON had none)."""

    config: Descriptor
    layers: tuple[Descriptor, ...] = ()
    schema_version: int | None = None
    media_type: str | None = None
    annotations: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Index:
    """An OCI image index or a Docker manifest list (`manifests` is empty when it had none)."""

    manifests: tuple[Descriptor, ...] = ()
    schema_version: int | None = None
    media_type: str | None = None
    annotations: Mapping[str, str] | None = None


@dataclass(frozen=True)
class ContainerConfig:
    """The part of an image config `in` reports: how the image runs, and its labels.

    A label whose JSON value was `null` is kept as "", as Go decodes it.
    """

    cmd: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: tuple[str, ...] | None = None
    user: str | None = None
    labels: Mapping[str, str] | None = None


@dataclass(frozen=True)
class ImageConfig:
    """An image config blob; `created` is kept as text (an unreadable time is no time)."""

    created: str | None = None
    config: ContainerConfig | None = None

    @property
    def labels(self) -> dict[str, str]:
        return dict((self.config.labels if self.config else None) or {})

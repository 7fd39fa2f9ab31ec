"""Telling an index from an image, and choosing one platform's image (types: `mediatypes`)."""

from __future__ import annotations

import platform as platform_module

from regwatch.errors import UnsupportedMedia
from regwatch.image.documents import REGISTRY, parse_image_manifest, parse_index
from regwatch.image.mediatypes import (
    IMAGE_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    SCHEMA1_MEDIA_TYPES,
    declared_media_type,
    has_entries,
    is_index,
)
from regwatch.image.model import Descriptor, ImageManifest, Index, Platform

_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386"}


def wanted_platform(architecture: str | None, os: str | None) -> Platform:
    """The platform to pick from an index: given parts, else this machine's (spec §2.4).

    `architecture` may carry a variant, `arm64/v8` or `arm/v7` (quirk Q1).
    """
    arch, _, variant = (architecture or "").partition("/")
    if not arch:
        machine = platform_module.machine().lower()
        arch = _GO_ARCH.get(machine, machine)
    return Platform(os or "linux", arch, variant or None)


def parse_manifest(
    body: bytes, media_type: str, name: str, *, sender: str | None = REGISTRY
) -> ImageManifest | Index:
    """An image manifest or an index, by the media type it was served with.

    When that type is none of ours (a registry answering `application/json`, a manifest
    without `mediaType`), the body's own `mediaType` decides, then its shape: an object with
    `manifests` is an index.
    """
    kind = media_type if media_type in MANIFEST_MEDIA_TYPES else declared_media_type(body)
    if kind in SCHEMA1_MEDIA_TYPES:
        raise UnsupportedMedia(f"manifest {name} is Docker schema 1, which regwatch cannot read")
    if is_index(kind) or (kind not in IMAGE_MEDIA_TYPES and has_entries(body)):
        return parse_index(body, f"index {name}", sender=sender)
    return parse_image_manifest(body, f"manifest {name}", sender=sender)


_UNNAMED_PLATFORM = ("linux", "amd64")


def select_child(index: Index, wanted: Platform) -> Descriptor | None:
    """The first entry of an index whose platform matches (no platform means linux/amd64).

    The variant is compared only when the wanted platform names one.
    """
    for child in index.manifests:
        platform = child.platform
        os, architecture = (platform.os, platform.architecture) if platform else _UNNAMED_PLATFORM
        if os != wanted.os or architecture != wanted.architecture:
            continue
        if wanted.variant and (platform.variant if platform else None) != wanted.variant:
            continue
        return child
    return None

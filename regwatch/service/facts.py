"""What a manifest, and the config of its platform image, say about a digest: `ImageFacts`."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from regwatch.image.manifests import parse_manifest
from regwatch.image.model import Index
from regwatch.observe import ImageFacts
from regwatch.registry.client import Manifest
from regwatch.registry.images import PlatformImage

_FRACTION = re.compile(r"(\.\d{6})\d+")


def created_at(value: str | None) -> datetime | None:
    """The config's RFC 3339 `created` (nanoseconds cut to microseconds); None when absent."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def image_facts(top: Manifest, image: PlatformImage | None) -> ImageFacts:
    """What a manifest, and the config of its platform image when fetched, say about a digest.

    `top` came through an `ImageSource`, which validated it on arrival.
    """
    document = parse_manifest(top.body, top.descriptor.media_type, top.descriptor.digest)
    return ImageFacts(
        digest=top.descriptor.digest,
        media_type=top.descriptor.media_type,
        size=top.descriptor.size,
        created=created_at(image.config.created) if image else None,
        platforms=platforms_of(document) if isinstance(document, Index) else (),
        blobs=(image.manifest.config.digest, *(layer.digest for layer in image.layers))
        if image
        else (),
    )


def platforms_of(index: Index) -> tuple[tuple[str, str, str | None, str], ...]:
    """(os, architecture, variant, digest) of each entry that names its platform."""
    return tuple(
        (child.platform.os, child.platform.architecture, child.platform.variant, child.digest)
        for child in index.manifests
        if child.platform is not None
    )

"""Every media type regwatch names, and what a document says its own type is.

Kept apart from the parsing of documents (`documents.py`) because `regwatch digest` and a check
in tag mode need the `Accept` list and nothing else. The JSON parser (pydantic-core's) is
loaded only when a body has to be read.
"""

from __future__ import annotations

from typing import Any, Final

MAX_DOCUMENT_BYTES: Final = 4 * 1024 * 1024
"""A manifest, index or image config larger than this is refused, whatever its descriptor says.

The OCI distribution spec's suggested manifest limit; real configs are a few KiB.
"""

DOCKER_MANIFEST_V1: Final = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED: Final = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_MANIFEST_V2: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"

MANIFEST_MEDIA_TYPES: tuple[str, ...] = (
    DOCKER_MANIFEST_V1,
    DOCKER_MANIFEST_V1_SIGNED,
    DOCKER_MANIFEST_V2,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
)
"""Every type we accept, in the order the Go original sends them.

The distribution registry answers 404 for an OCI manifest unless `Accept` names the OCI type
exactly, and down-converts schema 2 to schema 1 unless schema 2 is named: all six always go out.
"""

INDEX_MEDIA_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
IMAGE_MEDIA_TYPES = frozenset({DOCKER_MANIFEST_V2, OCI_MANIFEST})
SCHEMA1_MEDIA_TYPES = frozenset({DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED})
LAYOUT_MANIFEST_TYPES = IMAGE_MEDIA_TYPES | INDEX_MEDIA_TYPES
"""What an OCI layout's descriptors may point at as manifests."""

DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
DOCKER_LAYER_TAR: Final = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN_GZIP: Final = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_LAYER_TAR: Final = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD: Final = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDISTRIBUTABLE_TAR: Final = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDISTRIBUTABLE_GZIP: Final = (
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
)
NON_DISTRIBUTABLE_LAYER_TYPES = frozenset(
    {DOCKER_LAYER_FOREIGN_GZIP, OCI_LAYER_NONDISTRIBUTABLE_TAR, OCI_LAYER_NONDISTRIBUTABLE_GZIP}
)
"""Layer types go-containerregistry does not upload (`MediaType.IsDistributable`)."""


def is_index(media_type: str) -> bool:
    return media_type in INDEX_MEDIA_TYPES


def declared_media_type(body: bytes) -> str:
    """The top-level `mediaType` a manifest declares, or "" when it names none (or is no JSON)."""
    value = _top_level(body).get("mediaType")
    return value if isinstance(value, str) else ""


def has_entries(body: bytes) -> bool:
    """Whether a manifest of no known media type is shaped like an index (has `manifests`)."""
    return "manifests" in _top_level(body)


def parse_json(body: bytes) -> Any:
    """Any JSON document through pydantic-core's parser: strict, depth-limited, never a crash.

    Raises `ValueError` ("EOF while parsing a value at line 1 column 0"); the callers say what
    the document was. `NaN` and `Infinity` parse as floats, which no integer field accepts.
    """
    # Imported here: a registry names a manifest's type in its Content-Type, so `digest` and
    # `check` in tag mode never parse a body.
    from pydantic_core import from_json  # noqa: PLC0415

    return from_json(body, cache_strings="keys")


def _top_level(body: bytes) -> dict[str, Any]:
    """The top-level object of a document, or {} when it is none (the parse proper says why)."""
    if len(body) > MAX_DOCUMENT_BYTES:
        return {}
    try:
        document = parse_json(body)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}

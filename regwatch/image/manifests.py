"""Manifest media types, and which of them name an index of platform images."""

from __future__ import annotations

DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

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


def is_index(media_type: str) -> bool:
    return media_type in INDEX_MEDIA_TYPES

"""`Descriptor`: what a blob or manifest is (media type, digest, exact size), as one plain value.

The shape go-containerregistry's `v1.Descriptor` has without its platform and annotations,
which only index entries carry (`documents.Descriptor`, the parsed JSON, keeps those). Plain
and pydantic-free, so the registry client can hand it out to `digest` and `tags`, which never
load the models; a manifest HEAD, a layer to pull and a layer written to `image.tar` are this.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

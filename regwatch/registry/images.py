"""An image in a registry, read as typed documents: manifests, the platform's image, its config.

This is where registry JSON becomes typed for every use case that reads images (`check`'s
inspections, `in`): each manifest is validated when it arrives, each config too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from regwatch.errors import UnsupportedMedia
from regwatch.image.digests import VerifyingReader
from regwatch.image.documents import MAX_DOCUMENT_BYTES, parse_image_config, too_large
from regwatch.image.manifests import parse_manifest, select_child
from regwatch.image.model import Descriptor, ImageConfig, ImageManifest, Index, Platform
from regwatch.refs import Reference, Repository
from regwatch.registry.client import Manifest, RegistryClient


@dataclass(frozen=True)
class PlatformImage:
    """One image (a platform's child when the digest named an index), with its config.

    `manifest.config` describes the config blob; `config` is what the blob says.
    """

    digest: str
    media_type: str
    manifest: ImageManifest
    config: ImageConfig

    @property
    def layers(self) -> tuple[Descriptor, ...]:
        return self.manifest.layers

    @property
    def labels(self) -> dict[str, str]:
        return self.config.labels

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.manifest.annotations or {})


class ImageSource:
    """The images of one repository, read through a registry client.

    This is where registry JSON becomes typed: every manifest is validated as a manifest or
    index when it arrives, every config as an image config, each failure one line naming it.
    """

    def __init__(self, client: RegistryClient, repository: Repository) -> None:
        self.client = client
        self.repository = repository
        self._documents: dict[str, ImageManifest | Index] = {}

    def manifest(self, digest: str) -> Manifest:
        """A manifest by digest; its bytes are checked against the digest, its content parsed."""
        manifest = self.client.get_manifest(Reference(self.repository, digest=digest))
        self.document(manifest)
        return manifest

    def document(self, manifest: Manifest) -> ImageManifest | Index:
        """The typed content of a manifest this source fetched (parsed once per digest)."""
        digest = manifest.descriptor.digest
        document = self._documents.get(digest)
        if document is None:
            name = f"{self.repository}@{digest}"
            document = parse_manifest(manifest.body, manifest.descriptor.media_type, name)
            self._documents[digest] = document
        return document

    def fetch_manifest(self, digest: str) -> tuple[str, bytes]:
        manifest = self.manifest(digest)
        return manifest.descriptor.media_type, manifest.body

    @contextlib.contextmanager
    def open_blob(self, digest: str, size: int | None) -> Iterator[VerifyingReader]:
        with self.client.open_blob(self.repository, digest, size) as blob:
            yield blob

    def platform_image(self, top: Manifest, platform: Platform) -> PlatformImage:
        """The image itself, or the index's child for `platform` (spec §2.4)."""
        image, document = top, self.document(top)
        if isinstance(document, Index):
            child = select_child(document, platform)
            if child is None:
                raise UnsupportedMedia(
                    f"no child with platform {platform} in index "
                    f"{self.repository}@{top.descriptor.digest}"
                )
            image = self.manifest(child.digest)
            document = self.document(image)
            if isinstance(document, Index):
                raise UnsupportedMedia(
                    f"the child for platform {platform} of index "
                    f"{self.repository}@{top.descriptor.digest} is an index itself"
                )
        config = document.config
        return PlatformImage(
            digest=image.descriptor.digest,
            media_type=image.descriptor.media_type,
            manifest=document,
            config=self._config(config.digest, config.size),
        )

    def _config(self, digest: str, size: int) -> ImageConfig:
        """The config blob, read whole only when its declared size is within the limit.

        The reader fails as soon as the blob runs past the declared size, so neither a lying
        size nor an endless answer is ever held beyond `MAX_DOCUMENT_BYTES` and one chunk.
        """
        what = f"image config {self.repository}@{digest}"
        if size > MAX_DOCUMENT_BYTES:
            raise too_large(what, size)
        with self.open_blob(digest, size) as blob:
            body = blob.read()
        return parse_image_config(body, what)

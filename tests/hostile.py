"""Hostile registry content on the fault registry: documents of the test's choosing, endless blobs.

``HostileRegistry`` is a ``FaultRegistry`` (``tests.faults``) that can also answer with an
``Endless`` reply: a status and headers, then ``total`` bytes written from a generator as the
client reads them, so a test can send hundreds of megabytes without holding them. Whatever the
client does (stop reading, hang up), the fake stops at once.

``serve_image`` puts one image on it under a tag and its digest, with the manifest, config and
layer bytes given as they are, valid or not: the digests are computed from what is served, so
every byte reaches the parser and no digest check stops it first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.faults import (
    API_VERSION,
    API_VERSION_HEADER,
    OCI_MANIFEST,
    Action,
    FaultRegistry,
    Reply,
    _FaultHandler,
    blob_path,
    blob_reply,
    manifest_path,
    manifest_reply,
    sha256_digest,
    tags_path,
    tags_reply,
)

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Endless(Reply):
    """``total`` bytes of ``fill`` after the headers; ``Content-Length`` only if ``send_length``."""

    total: int = 300 * 1024 * 1024
    fill: bytes = field(default=b"\0" * _CHUNK)

    def chunks(self) -> Iterator[bytes]:
        left = self.total
        while left > 0:
            piece = self.fill[: min(len(self.fill), left)]
            left -= len(piece)
            yield piece


class HostileRegistry(FaultRegistry):
    """The fault registry, able to stream an ``Endless`` answer."""

    def __init__(self, bind: str = "127.0.0.1") -> None:
        super().__init__(bind)
        self._server.RequestHandlerClass = _HostileHandler
        self.endless_bytes_sent = 0

    def __enter__(self) -> HostileRegistry:
        self.start()
        return self

    def _sent(self, amount: int) -> None:
        with self._lock:
            self.endless_bytes_sent += amount


class _HostileHandler(_FaultHandler):
    def _answer(self, reply: Reply) -> None:
        if not isinstance(reply, Endless):
            super()._answer(reply)
            return
        self.send_response(reply.status)
        for name, value in {API_VERSION_HEADER: API_VERSION, **reply.headers}.items():
            self.send_header(name, value)
        if reply.send_length:
            self.send_header("Content-Length", str(reply.total))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command == "HEAD":
            return
        registry = self.server.registry
        assert isinstance(registry, HostileRegistry)
        for chunk in reply.chunks():
            self.wfile.write(chunk)  # an OSError (the client hung up) ends the answer
            registry._sent(len(chunk))


# -- documents ------------------------------------------------------------------------------------


def descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data)}


def config_body(**fields: Any) -> bytes:
    document = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}, **fields}
    return json.dumps(document).encode()


def manifest_body(config: bytes, layers: tuple[bytes, ...] = (), /, **changes: Any) -> bytes:
    """An OCI manifest of these blobs; ``changes`` replace (or, as None, remove) its fields."""
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
    }
    document.update(changes)
    return json.dumps({k: v for k, v in document.items() if v is not None}).encode()


def index_body(*children: Mapping[str, Any]) -> bytes:
    document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(children)}
    return json.dumps(document).encode()


@dataclass(frozen=True)
class Served:
    repository: str
    tag: str
    digest: str


def serve_image(
    registry: FaultRegistry,
    repository: str,
    manifest: bytes,
    *,
    media_type: str | None = OCI_MANIFEST,
    blobs: Mapping[str, Action] | None = None,
    tag: str = "v1",
    digest_header: bool = True,
) -> Served:
    """Serve ``manifest`` under ``tag`` and its digest, its tag list, and ``blobs`` by digest.

    ``media_type=None`` leaves out ``Content-Type``; ``digest_header=False`` leaves out
    ``Docker-Content-Digest``, so a HEAD is inconclusive and the client has to GET.
    """
    digest = sha256_digest(manifest)
    reply = manifest_reply(manifest, media_type, digest="" if digest_header else None)
    for reference in (tag, digest):
        registry.route("GET", manifest_path(repository, reference), reply)
    registry.route("GET", tags_path(repository), tags_reply(repository, [tag]))
    for blob_digest, action in (blobs or {}).items():
        registry.route("GET", blob_path(repository, blob_digest), action)
    return Served(repository, tag, digest)


def blobs_of(*data: bytes) -> dict[str, Action]:
    """Each blob served honestly under its own digest."""
    return {sha256_digest(blob): blob_reply(blob) for blob in data}

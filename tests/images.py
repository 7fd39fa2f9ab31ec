"""Deterministic test images: layers, configs, manifests and indexes built in the suite.

Images are pushed either through regwatch's own client (which exercises its upload path) or
with `skopeo copy` from an OCI layout written here (a real tool as the independent witness).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from regwatch.image import layout
from regwatch.image import mediatypes as mt
from regwatch.image.digests import BlobReader, VerifyingReader
from regwatch.image.model import Descriptor
from regwatch.image.tarball import write_image_tarball
from regwatch.refs import Reference, Repository
from regwatch.registry.client import RegistryClient
from tests.registries import RegistryServer, require_tool

EPOCH = 1_600_000_000


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256(self.data)

    @property
    def hex(self) -> str:
        return self.digest.removeprefix("sha256:")

    def described(self) -> Descriptor:
        """The blob as regwatch's model describes it."""
        return Descriptor(self.media_type, self.digest, len(self.data))

    def descriptor(self, **extra: object) -> dict[str, object]:
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.data),
            **extra,
        }


@dataclass(frozen=True)
class Image:
    """One platform image: its config, layers and manifest bytes."""

    config: Blob
    layers: tuple[Blob, ...]
    manifest: Blob
    platform: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)


@dataclass(frozen=True)
class Index:
    images: tuple[Image, ...]
    manifest: Blob

    @property
    def digest(self) -> str:
        return self.manifest.digest


class MemoryBlobs:
    """A registry's blobs and manifests in memory, served to the image writers as the registry
    client serves them (verifying readers), counting what was asked for.

    `verify=False` hands out plain BytesIO readers, to show the writers check on their own.
    """

    def __init__(
        self,
        blobs: Sequence[Blob] = (),
        manifests: Sequence[Blob] = (),
        *,
        replace: Mapping[str, bytes] | None = None,
        verify: bool = True,
        chunk: int = 7,
    ) -> None:
        self.blobs = {b.digest: b.data for b in blobs} | dict(replace or {})
        self.manifests = {m.digest: (m.media_type, m.data) for m in manifests}
        self.verify = verify
        self.chunk = chunk
        self.opened: list[str] = []
        self.fetched: list[str] = []
        self._lock = threading.Lock()

    @classmethod
    def holding(cls, items: Sequence[Image | Index | Blob], *, chunk: int = 4096) -> MemoryBlobs:
        """Every manifest and blob of `items`; a bare `Blob` is a manifest."""
        blobs: list[Blob] = []
        manifests: list[Blob] = []
        pending = list(items)
        while pending:
            item = pending.pop()
            if isinstance(item, Blob):
                manifests.append(item)
                continue
            manifests.append(item.manifest)
            if isinstance(item, Index):
                pending.extend(item.images)
            else:
                blobs.extend(item.blobs())
        return cls(blobs, manifests, chunk=chunk)

    @contextlib.contextmanager
    def open_blob(self, digest: str, size: int | None) -> Iterator[BlobReader]:
        with self._lock:
            self.opened.append(digest)
        data = self.blobs[digest]
        if not self.verify:
            yield io.BytesIO(data)
            return
        chunks = [data[i : i + self.chunk] for i in range(0, len(data), self.chunk)]
        yield VerifyingReader(chunks, digest, size, f"blob {digest}")

    def fetch_manifest(self, digest: str) -> tuple[str, bytes]:
        self.fetched.append(digest)
        return self.manifests[digest]

    def write_tarball(self, path: Path, image: Image, repo_tag: str) -> Path:
        """`in`'s `image.tar` of `image`, its blobs from here."""
        write_image_tarball(
            path,
            config=image.config.described(),
            layers=[b.described() for b in image.layers],
            repo_tag=repo_tag,
            open_blob=self.open_blob,
        )
        return path

    def write_layout(self, directory: Path, top: Blob, concurrency: int = 4) -> Path:
        """`in`'s OCI layout of the manifest `top`, its manifests and blobs from here."""
        layout.write_oci_layout(
            directory,
            digest=top.digest,
            media_type=top.media_type,
            manifest_bytes=top.data,
            fetch_manifest=self.fetch_manifest,
            open_blob=self.open_blob,
            concurrency=concurrency,
        )
        return directory


def layer(files: Mapping[str, bytes]) -> Blob:
    """A gzip layer whose bytes depend only on `files` (fixed mtimes, owners and gzip header)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(content), EPOCH, 0o644
            tar.addfile(info, io.BytesIO(content))
    compressed = gzip.compress(raw.getvalue(), mtime=0)
    return Blob(mt.OCI_LAYER_GZIP, compressed)


def image(
    name: str,
    *,
    files: Mapping[str, bytes] | None = None,
    created: str = "2024-01-01T00:00:00Z",
    architecture: str = "amd64",
    os: str = "linux",
    docker: bool = False,
) -> Image:
    """An image with one layer; `name` makes its content (and so its digests) unique."""
    body = layer(files or {"etc/name": name.encode()})
    config = {
        "created": created,
        "architecture": architecture,
        "os": os,
        "config": {"Env": ["PATH=/usr/bin"], "Labels": {"name": name}},
        "rootfs": {"type": "layers", "diff_ids": [sha256(gzip.decompress(body.data))]},
    }
    if docker:
        config_type, manifest_type = (
            "application/vnd.docker.container.image.v1+json",
            mt.DOCKER_MANIFEST_V2,
        )
        body = Blob("application/vnd.docker.image.rootfs.diff.tar.gzip", body.data)
    else:
        config_type, manifest_type = mt.OCI_CONFIG, mt.OCI_MANIFEST
    config_blob = Blob(config_type, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": config_blob.descriptor(),
        "layers": [body.descriptor()],
    }
    return Image(
        config_blob,
        (body,),
        Blob(manifest_type, json.dumps(manifest).encode()),
        {"architecture": architecture, "os": os},
    )


def index(images: Sequence[Image], *, docker: bool = False) -> Index:
    media_type = mt.DOCKER_MANIFEST_LIST if docker else mt.OCI_INDEX
    body = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [i.manifest.descriptor(platform=dict(i.platform)) for i in images],
    }
    return Index(tuple(images), Blob(media_type, json.dumps(body).encode()))


def push(client: RegistryClient, repository: Repository, tag: str, item: Image | Index) -> str:
    """Push through regwatch's client: blobs, child manifests by digest, then the tag."""
    images = item.images if isinstance(item, Index) else (item,)
    for one in images:
        for blob in (one.config, *one.layers):
            client.upload_blob(repository, blob.data, blob.digest, len(blob.data))
        if isinstance(item, Index):
            child = Reference(repository, digest=one.digest)
            client.put_manifest(child, one.manifest.data, one.manifest.media_type)
    return tag_manifest(client, repository, tag, item)


def tag_manifest(
    client: RegistryClient, repository: Repository, tag: str, item: Image | Index
) -> str:
    """Point one more tag at an image `push` already pushed: its manifest PUT alone."""
    ref = Reference(repository, tag=tag)
    return client.put_manifest(ref, item.manifest.data, item.manifest.media_type)


def write_oci_layout(directory: Path, tag: str, item: Image) -> Path:
    """An OCI image layout holding one tagged image, for `skopeo copy oci:DIR:TAG`."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for blob in (item.config, *item.layers, item.manifest):
        (blobs / blob.digest.removeprefix("sha256:")).write_bytes(blob.data)
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    descriptor = item.manifest.descriptor(annotations={"org.opencontainers.image.ref.name": tag})
    (directory / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "manifests": [descriptor]})
    )
    return directory


def skopeo_copy(
    layout: Path, tag: str, server: RegistryServer, repository: str, *extra: str
) -> None:
    """Push an OCI layout into a test registry with skopeo, trusting the suite's CA."""
    args = [
        require_tool("skopeo"),
        "copy",
        "--quiet",
        *extra,
        *_skopeo_flags("dest", server, layout),
    ]
    args += [f"oci:{layout}:{tag}", f"docker://{server.host}/{repository}:{tag}"]
    subprocess.run(args, check=True, capture_output=True, timeout=120)


def skopeo_digest(server: RegistryServer, reference: str, workdir: Path) -> str:
    """What skopeo says a reference's digest is: the independent answer to compare with."""
    args = [require_tool("skopeo"), "inspect", "--raw", *_skopeo_flags("", server, workdir)]
    raw = subprocess.run(
        [*args, f"docker://{server.host}/{reference}"],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    return sha256(raw)


def _skopeo_flags(side: str, server: RegistryServer, workdir: Path) -> list[str]:
    """skopeo's TLS and credential flags; `side` is "dest", "src" or "" (for inspect)."""
    prefix = f"--{side}-" if side else "--"
    flags: list[str] = []
    if server.scheme == "http":
        flags.append(f"{prefix}tls-verify=false")
    if server.ca_pem:
        certs = workdir.parent / f"{workdir.name}-certs"
        certs.mkdir(exist_ok=True)
        (certs / "ca.crt").write_text(server.ca_pem)
        flags.append(f"{prefix}cert-dir={certs}")
    if server.username and server.password:
        flags.append(f"{prefix}creds={server.username}:{server.password}")
    return flags

"""Concourse `in`: download a version into a directory, with retries and clean-up."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from regwatch.errors import ConfigError, RegwatchError, prefixed, transient
from regwatch.gojson import marshal
from regwatch.image.layout import write_oci_layout
from regwatch.image.manifests import wanted_platform
from regwatch.image.model import Platform
from regwatch.image.removal import remove_tree
from regwatch.image.tarball import write_image_tarball
from regwatch.observe import Observation
from regwatch.patterns import Pattern, compile_pattern
from regwatch.refs import Repository, parse_digest
from regwatch.registry.client import Manifest
from regwatch.registry.images import ImageSource, PlatformImage
from regwatch.retrying import retry
from regwatch.service.facts import image_facts
from regwatch.service.unpack import NoProgress, Progress, write_rootfs, write_small_file
from regwatch.specs import Access, FetchSpec, Metadata, WatchSpec

if TYPE_CHECKING:
    from regwatch.service.app import Service

log = logging.getLogger(__name__)


FORMATS = ("rootfs", "oci", "oci-layout")


def get(
    service: Service,
    spec: WatchSpec,
    fetch: FetchSpec,
    destination: Path,
    *,
    progress: Progress | None = None,
) -> list[Metadata]:
    """Concourse `in`: download `fetch.version`'s digest into `destination` (spec §6.1–6.5)."""
    wanted = fetch.platform or spec.platform
    platform = wanted_platform(
        wanted.architecture if wanted else None, wanted.os if wanted else None
    )
    try:
        destination.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {destination}: {exc.strerror or exc}") from exc
    plan = _GetPlan(service, spec, fetch, destination, platform, progress or NoProgress())
    fetched: _Fetched | None = None
    if spec.mirror is not None:
        mirror = spec.mirror
        try:
            fetched = plan.download(mirror.repository, mirror.access)
        except RegwatchError as exc:
            log.warning("download from mirror %s failed: %s", mirror.repository, exc)
            if not plan.clean():
                raise prefixed(exc, "download failed") from exc
    if fetched is None:
        try:
            fetched = plan.download(spec.repository, spec.access)
        except RegwatchError as exc:
            plan.clean()
            raise prefixed(exc, "download failed") from exc
    try:  # before the version files: a config fetched only now may still be invalid
        metadata = _metadata(spec, fetch, fetched, platform)
    except RegwatchError as exc:
        raise prefixed(exc, "enriching metadata failed") from exc
    try:
        for name, value in (
            ("tag", fetch.version.tag),
            ("digest", fetch.version.digest),
            ("repository", spec.shown),
        ):
            write_small_file(destination / name, value)
    except OSError as exc:
        reason = f"{exc.filename}: {exc.strerror}" if exc.strerror else str(exc)
        raise ConfigError(f"saving version info failed: {reason}") from exc
    _record_inspection(service, spec.repository, fetched)
    return metadata


@dataclass(frozen=True)
class _Fetched:
    source: ImageSource
    top: Manifest
    image: PlatformImage | None


@dataclass(frozen=True)
class _GetPlan:
    service: Service
    spec: WatchSpec
    fetch: FetchSpec
    destination: Path
    platform: Platform
    progress: Progress

    def download(self, repository: Repository, access: Access) -> _Fetched:
        """The whole download, retried on transient failures with the §7 backoff; before a
        retry, what the attempt wrote is removed and the client dropped (a fresh ping)."""
        log.info("fetching %s@%s", repository, self.fetch.version.digest)

        def afresh() -> bool:
            self.service.clients.forget(repository.registry, access)
            return self.clean()

        return retry(
            lambda: self._attempt(repository, access),
            policy=self.service.retry,
            transient=transient,
            before_retry=afresh,
            sleep=self.service.sleep,
        )

    def _attempt(self, repository: Repository, access: Access) -> _Fetched:
        """One try: the manifest by digest, then the format."""
        client = self.service.clients.client(repository.registry, access)
        images = ImageSource(client, repository)
        try:
            top = images.manifest(parse_digest(self.fetch.version.digest))
        except RegwatchError as exc:
            raise prefixed(exc, "fetch descriptor") from exc
        image = None if self.fetch.skip_download else self._write(images, top)
        return _Fetched(images, top, image)

    def _write(self, images: ImageSource, top: Manifest) -> PlatformImage | None:
        fmt = self.fetch.format or "rootfs"
        if fmt not in FORMATS:
            raise ConfigError(
                f"unknown format provided, must be one of 'rootfs', 'oci', 'oci-layout: {fmt}"
            )
        if fmt == "oci-layout":
            write_oci_layout(
                self.destination / "oci",
                digest=top.descriptor.digest,
                media_type=top.descriptor.media_type,
                manifest_bytes=top.body,
                fetch_manifest=images.fetch_manifest,
                open_blob=images.open_blob,
            )
            return None
        image = images.platform_image(top, self.platform)
        if fmt == "oci":
            tag = self.fetch.version.tag or "latest"
            write_image_tarball(
                self.destination / "image.tar",
                config=image.manifest.config,
                layers=image.layers,
                repo_tag=f"{self.spec.repository.name}:{tag}",
                open_blob=images.open_blob,
            )
        else:
            debug = log.debug if log.isEnabledFor(logging.DEBUG) else None
            write_rootfs(self.destination / "rootfs", images, image, self.progress, on_debug=debug)
            write_small_file(self.destination / "metadata.json", _image_metadata(image))
        write_small_file(
            self.destination / "labels.json", _go_json(dict(sorted(image.labels.items())))
        )
        return image

    def clean(self) -> bool:
        """Remove what a failed attempt wrote, so the next one starts clean (quirk Q12).

        It runs while that failure is on its way up, so a removal that fails too is only
        logged: the failure reported stays the real one. False when something is left over,
        and a retry would start on it.
        """
        leftovers = [
            *(
                self.destination / name
                for name in ("rootfs", "oci", "image.tar", "metadata.json", "labels.json")
            ),
            *self.destination.glob(".regwatch-layers-*"),
        ]
        cleaned = True
        for path in leftovers:
            try:
                remove_tree(str(path))
            except OSError as exc:
                log.warning("could not remove %s: %s", path, exc.strerror or exc)
                cleaned = False
        return cleaned


def _metadata(
    spec: WatchSpec, fetch: FetchSpec, fetched: _Fetched, platform: Platform
) -> list[Metadata]:
    """repository and tag, then matching labels and annotations, each sorted by key (§6.5)."""
    found = [Metadata("repository", spec.shown), Metadata("tag", fetch.version.tag)]
    if not (spec.label_regex or spec.annotation_regex):
        return found
    label_pattern = _compile(spec.label_regex, "label_regex")
    annotation_pattern = _compile(spec.annotation_regex, "annotation_regex")
    image = fetched.image or fetched.source.platform_image(fetched.top, platform)
    if label_pattern:
        found += [
            Metadata(k, v) for k, v in sorted(image.labels.items()) if label_pattern.found_in(k)
        ]
    if annotation_pattern:
        found += [
            Metadata(k, v)
            for k, v in sorted(image.annotations.items())
            if annotation_pattern.found_in(k)
        ]
    return found


def _compile(pattern: str | None, field_name: str) -> Pattern | None:
    return compile_pattern(pattern, field_name) if pattern else None


def _image_metadata(image: PlatformImage) -> str:
    """metadata.json: cmd, entrypoint, env, user, in that order (spec §6.3)."""
    run = image.config.config
    return _go_json(
        {
            "cmd": run.cmd if run else None,
            "entrypoint": run.entrypoint if run else None,
            "env": run.env if run else None,
            "user": (run.user if run else None) or "",
        }
    )


def _go_json(value: object) -> str:
    """JSON as Go's encoder writes it to a file: `json.Marshal`, then a newline."""
    return marshal(value).decode() + "\n"


def _record_inspection(service: Service, origin: Repository, fetched: _Fetched) -> None:
    """With a persistent store, remember what the image is (once per digest)."""
    if not service.persistent:
        return
    facts = image_facts(fetched.top, fetched.image)
    observation = Observation(stream=origin.name, taken_at=service.now(), inspected=(facts,))
    service.record_aside(origin.name, observation)

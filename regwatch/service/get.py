"""Concourse `in`: download a version into a directory, with retries and clean-up."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from regwatch.config import GetParams, Source, Version
from regwatch.download import (
    ImageSource,
    NoProgress,
    PlatformImage,
    Progress,
    write_rootfs,
    write_small_file,
)
from regwatch.errors import ConfigError, RegwatchError
from regwatch.image.manifests import Platform, wanted_platform
from regwatch.image.ocilayout import write_image_tarball, write_oci_layout
from regwatch.image.removal import remove_tree
from regwatch.net import Transport
from regwatch.observe import Observation
from regwatch.patterns import Pattern, compile_pattern
from regwatch.refs import Repository, parse_digest, parse_repository
from regwatch.registry.client import Manifest
from regwatch.retrying import RetryPolicy
from regwatch.service.wiring import (
    Access,
    Clock,
    Metadata,
    access_of,
    connect,
    image_facts,
    mirror_of,
    prefixed,
    record_aside,
    refuse_unsupported,
    transient,
    utc_now,
)

log = logging.getLogger(__name__)


FORMATS = ("rootfs", "oci", "oci-layout")


def get(
    source: Source,
    params: GetParams,
    version: Version,
    destination: Path,
    *,
    progress: Progress | None = None,
    now: Clock = utc_now,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Metadata]:
    """Concourse `in`: download `version.digest` into `destination` (spec §6.1–6.5)."""
    refuse_unsupported(source)
    try:
        origin = parse_repository(source.repository)
    except ConfigError as exc:
        raise ConfigError(f"failed to resolve repository: {exc}") from None
    wanted = params.platform or source.platform
    platform = wanted_platform(
        wanted.architecture if wanted else None, wanted.os if wanted else None
    )
    try:
        destination.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {destination}: {exc.strerror or exc}") from exc
    plan = _GetPlan(
        source, params, version, destination, platform, origin, progress or NoProgress()
    )
    fetched: _Fetched | None = None
    mirror = mirror_of(origin, source)
    if mirror is not None:
        mirror_repo, mirror_access = mirror
        try:
            fetched = plan.download(mirror_repo, mirror_access, sleep)
        except RegwatchError as exc:
            log.warning("download from mirror %s failed: %s", mirror_repo, exc)
            if not plan.clean():
                raise prefixed(exc, "download failed") from exc
    if fetched is None:
        try:
            fetched = plan.download(origin, access_of(source), sleep)
        except RegwatchError as exc:
            plan.clean()
            raise prefixed(exc, "download failed") from exc
    try:
        try:  # before the version files: a config fetched only now may still be invalid
            metadata = _metadata(source, version, fetched, platform)
        except RegwatchError as exc:
            raise prefixed(exc, "enriching metadata failed") from exc
        try:
            for name, value in (
                ("tag", version.tag),
                ("digest", version.digest),
                ("repository", source.repository),
            ):
                write_small_file(destination / name, value)
        except OSError as exc:
            reason = f"{exc.filename}: {exc.strerror}" if exc.strerror else str(exc)
            raise ConfigError(f"saving version info failed: {reason}") from exc
    finally:
        fetched.transport.close()
    if source.store:
        _record_inspection(source, origin, fetched, now)
    return metadata


@dataclass(frozen=True)
class _Fetched:
    transport: Transport
    source: ImageSource
    top: Manifest
    image: PlatformImage | None


@dataclass(frozen=True)
class _GetPlan:
    source: Source
    params: GetParams
    version: Version
    destination: Path
    platform: Platform
    origin: Repository
    progress: Progress

    def download(
        self, repository: Repository, access: Access, sleep: Callable[[float], None]
    ) -> _Fetched:
        """The whole download, retried on transient failures with the §7 backoff."""
        log.info("fetching %s@%s", repository, self.version.digest)
        policy = RetryPolicy.from_env()
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                return self._attempt(repository, access)
            except RegwatchError as exc:
                delay = policy.interval(attempt)
                if not transient(exc) or time.monotonic() - started + delay > policy.budget:
                    raise
                log.warning("transient error: %s; retrying in %.1fs", exc, delay)
                if not self.clean():
                    raise
                sleep(delay)
                attempt += 1

    def _attempt(self, repository: Repository, access: Access) -> _Fetched:
        """One try: a fresh connection (and ping), the manifest by digest, then the format."""
        transport = Transport(ca_certs=access.ca_certs)
        images = ImageSource(connect(repository.registry, access, transport), repository)
        try:
            try:
                top = images.manifest(parse_digest(self.version.digest))
            except RegwatchError as exc:
                raise prefixed(exc, "fetch descriptor") from exc
            image = None if self.params.skip_download else self._write(images, top)
        except BaseException:
            transport.close()
            raise
        return _Fetched(transport, images, top, image)

    def _write(self, images: ImageSource, top: Manifest) -> PlatformImage | None:
        fmt = self.params.format or "rootfs"
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
            tag = self.version.tag or "latest"
            write_image_tarball(
                self.destination / "image.tar",
                config_digest=image.config_digest,
                config_size=image.config_size,
                layers=[(layer.digest, layer.size, layer.media_type) for layer in image.layers],
                repo_tag=f"{self.origin.name}:{tag}",
                open_blob=images.open_blob,
            )
        else:
            debug = log.debug if self.source.debug else None
            progress = NoProgress() if self.source.debug else self.progress
            write_rootfs(self.destination / "rootfs", images, image, progress, on_debug=debug)
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
    source: Source, version: Version, fetched: _Fetched, platform: Platform
) -> list[Metadata]:
    """repository and tag, then matching labels and annotations, each sorted by key (§6.5)."""
    found = [Metadata("repository", source.repository), Metadata("tag", version.tag)]
    if not (source.label_regex or source.annotation_regex):
        return found
    label_pattern = _compile(source.label_regex, "label_regex")
    annotation_pattern = _compile(source.annotation_regex, "annotation_regex")
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
    """JSON as Go's encoder writes it: compact, UTF-8, `<>&` escaped, a final newline."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text + "\n"


def _record_inspection(source: Source, origin: Repository, fetched: _Fetched, now: Clock) -> None:
    """With a persistent store, remember what the image is (once per digest)."""
    facts = image_facts(fetched.top, fetched.image)
    observation = Observation(stream=origin.name, taken_at=now(), inspected=(facts,))
    record_aside(source, origin.name, observation)

"""Concourse `out`: push an image under its tags and aliases, and record the push."""

from __future__ import annotations

import logging
import os
import re
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from regwatch.config import PutParams, Source, Version
from regwatch.download import Layer, NoProgress, Progress
from regwatch.errors import ConfigError, RegwatchError, StoreError
from regwatch.events import ImagePushed
from regwatch.gofilepath import escape, glob, join
from regwatch.image.loading import BlobSource, LoadedImage, load_image
from regwatch.net import Readable, Transport
from regwatch.observe import Observation
from regwatch.projections.aliases import decide_aliases, version_tag
from regwatch.refs import Reference, Repository, parse_repository, parse_tag
from regwatch.registry.client import RegistryClient
from regwatch.retrying import RetryPolicy
from regwatch.service.wiring import (
    Access,
    Clock,
    Metadata,
    access_of,
    connect,
    open_store,
    prefixed,
    record_aside,
    refuse_unsupported,
    transient,
    utc_now,
)
from regwatch.versioning import Version as SemVersion
from regwatch.versioning import parse_version, why_not_a_version

log = logging.getLogger(__name__)


UPLOAD_CHUNK = 64 * 1024 * 1024
"""Blobs larger than this go up in several PATCH requests."""


PARALLEL_UPLOADS = 4


@dataclass(frozen=True)
class Pushed:
    version: Version
    metadata: list[Metadata]


def put(
    source: Source,
    params: PutParams,
    source_dir: Path,
    *,
    progress: Progress | None = None,
    now: Clock = utc_now,
    sleep: Callable[[float], None] = time.sleep,
) -> Pushed:
    """Concourse `out`: push the image at `params.image` under the computed tags (spec §6.6)."""
    refuse_unsupported(source)
    if source.content_trust is not None:
        raise ConfigError("content_trust: signing with Notary is not built yet; remove it to push")
    try:
        repository = parse_repository(source.repository)
    except ConfigError as exc:
        raise ConfigError(f"could not resolve repository: {exc}") from None
    tags = _tags_to_push(source, params, source_dir, repository, now)
    image_path = _glob_one(source_dir, params.image or "")
    try:
        loaded = load_image(image_path)
    except RegwatchError as exc:
        raise prefixed(exc, f"could not load image from path '{params.image}'") from exc
    homes = _blob_homes(source, repository, loaded) if source.store else {}
    with loaded:
        try:
            shown = progress or NoProgress()
            _push_with_retries(repository, access_of(source), loaded, tags, shown, sleep, homes)
        except RegwatchError as exc:
            raise prefixed(exc, "pushing image failed") from exc
        digest = loaded.top.digest
    if source.store:
        blobs = tuple(blob.digest for blob in loaded.blobs)
        _record_push(source, repository, digest, tags, blobs, now)
    return Pushed(
        Version(tag=tags[0], digest=digest),
        [Metadata("repository", source.repository), Metadata("tags", " ".join(tags))],
    )


def _tags_to_push(
    source: Source, params: PutParams, source_dir: Path, repository: Repository, now: Clock
) -> list[str]:
    """source tag, version tag, aliases, additional tags: in that order (spec §6.6).

    Every tag is checked against the distribution grammar before the alias listing, the one
    request made here, so an invalid tag never reaches the registry.
    """
    version = _out_version(params.version) if params.version else None
    extra = _additional_tags(source_dir, params.additional_tags)
    if params.tag_prefix and not extra:
        raise ConfigError("tag_prefix can only be used when additional_tags are specified")
    prefix = params.tag_prefix or ""
    extra = [_valid(f"{prefix}{tag}", _extra_origin(prefix)) for tag in extra]
    tags: list[str] = [source.tag] if source.tag else []
    if version is not None:
        tags.append(_valid(version_tag(version, source.variant), "params.version"))
        if params.bump_aliases and not version.prerelease:
            for alias in decide_aliases([], version, source.variant).aliases:
                _valid(alias, "params.version with bump_aliases")
            try:
                existing = _observe_listing(source, repository, now)
            except RegwatchError as exc:
                raise prefixed(exc, "determine aliases") from exc
            decision = decide_aliases(existing, version, source.variant)
            for reason in decision.held_back:
                log.info("%s", reason)
            tags.extend(decision.aliases)
    tags.extend(extra)
    if not tags:
        raise ConfigError("no tag specified - need either 'version:' in params or 'tag:' in source")
    return tags


def _valid(tag: str, origin: str) -> str:
    try:
        return parse_tag(tag)
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def _extra_origin(prefix: str) -> str:
    return (
        f"params.additional_tags with tag_prefix {prefix!r}" if prefix else "params.additional_tags"
    )


def _out_version(text: str) -> SemVersion:
    version = parse_version(text)
    if version is not None:
        return version
    reason = why_not_a_version(text)
    if reason is None:
        raise ConfigError(f'invalid semantic version: "{text}"')
    raise ConfigError(f"failed to parse version: {reason}")


def _observe_listing(source: Source, repository: Repository, now: Clock) -> list[str]:
    """List the repository's tags for the aliases; a persistent store records the listing.

    Without a store nothing would keep the record, so none is made.
    """
    client = connect(repository.registry, access_of(source))
    listed = tuple(client.list_tags(repository, new_ok=True))
    if source.store:
        observation = Observation(stream=repository.name, taken_at=now(), listed=listed)
        record_aside(source, repository.name, observation)
    return list(listed)


MAX_ADDITIONAL_TAGS_BYTES = 1024 * 1024
"""A tags file is a few words; anything bigger is a mistake (or /dev/zero), not tags."""

_GO_SPACE = re.compile("[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
"""Go's `unicode.IsSpace`, which `strings.Fields` splits on (Python's `split` differs)."""


def _additional_tags(source_dir: Path, name: str | None) -> list[str]:
    """The words of the file `name` below SRC, found as Go's `filepath.Join` finds it."""
    if not name:
        return []
    path = join(str(source_dir), name)
    try:
        content = _read_small_file(path, MAX_ADDITIONAL_TAGS_BYTES)
    except OSError as exc:
        reason = exc.strerror if exc.strerror else str(exc)
        raise ConfigError(
            f'could not parse additional tags: failed to read file at "{path}": {reason}'
        ) from exc
    text = content.decode("utf-8", errors="surrogateescape")
    return [word for word in _GO_SPACE.split(text) if word]


def _read_small_file(path: str, limit: int) -> bytes:
    """A regular file's bytes, refused beyond `limit`; opening never blocks on a FIFO."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file")
        content = stream.read(limit + 1)
    if len(content) > limit:
        raise OSError(0, f"larger than {limit // 1024} KiB")
    return content


def _glob_one(source_dir: Path, pattern: str) -> Path:
    """Exactly one path matching `pattern` below the sources directory, as Go's Glob finds it.

    The pattern is joined to SRC with `filepath.Join`, so `/image.tar` is SRC's `image.tar`;
    SRC itself is matched literally, whatever characters its name holds.
    """
    try:
        matches = glob(join(escape(str(source_dir)), pattern))
    except ConfigError as exc:
        raise ConfigError(f"failed to glob path '{pattern}': {exc}") from None
    if not matches:
        raise ConfigError(f"no files match glob '{pattern}'")
    if len(matches) > 1:
        raise ConfigError(
            f"too many files/directories match glob '{pattern}': [{' '.join(matches)}]"
        )
    return Path(matches[0])


def _push_with_retries(
    repository: Repository,
    access: Access,
    loaded: LoadedImage,
    tags: Sequence[str],
    progress: Progress,
    sleep: Callable[[float], None],
    homes: Mapping[str, Repository],
) -> None:
    policy = RetryPolicy.from_env()
    started = time.monotonic()
    attempt = 0
    while True:
        transport = Transport(ca_certs=access.ca_certs)
        try:
            client = connect(repository.registry, access, transport)
            _push(client, repository, loaded, tags, progress, homes)
            return
        except RegwatchError as exc:
            delay = policy.interval(attempt)
            if not transient(exc) or time.monotonic() - started + delay > policy.budget:
                raise
            log.warning("transient error: %s; retrying in %.1fs", exc, delay)
            sleep(delay)
            attempt += 1
        finally:
            transport.close()


def _push(
    client: RegistryClient,
    repository: Repository,
    loaded: LoadedImage,
    tags: Sequence[str],
    progress: Progress,
    homes: Mapping[str, Repository],
) -> None:
    """Blobs the registry lacks, child manifests, then each tag that does not already match.

    A missing blob the log places in another repository of this registry is mounted from
    there instead of uploaded.
    """
    unique = list(dict.fromkeys(tags))
    log.info("pushing tag(s) %s", ", ".join(unique))
    top = loaded.top
    stale = [tag for tag in unique if not _tag_points_at(client, repository, tag, top.digest)]
    if stale:
        _in_parallel(
            [
                partial(_ensure_blob, client, repository, blob, progress=progress, homes=homes)
                for blob in loaded.blobs
            ]
        )
        for manifest in loaded.manifests:
            if manifest is not top:
                child = Reference(repository, digest=manifest.digest)
                client.put_manifest(child, manifest.body, manifest.media_type)
        _in_parallel(
            [
                partial(
                    client.put_manifest, Reference(repository, tag=tag), top.body, top.media_type
                )
                for tag in stale
            ]
        )
    log.info("pushed")


def _in_parallel(work: Sequence[Callable[[], object]]) -> None:
    """Run up to PARALLEL_UPLOADS jobs at once; the first failure is raised."""
    with ThreadPoolExecutor(max_workers=PARALLEL_UPLOADS) as pool:
        for future in [pool.submit(job) for job in work]:
            future.result()


def _mounted(
    client: RegistryClient, repository: Repository, digest: str, home: Repository | None
) -> bool:
    if home is None or not client.mount_blob(repository, digest, home):
        return False
    log.info("mounted %s from %s", digest, home)
    return True


def _blob_homes(
    source: Source, repository: Repository, loaded: LoadedImage
) -> dict[str, Repository]:
    """Other repositories of this registry that the store's blob locations say hold our blobs.

    Only a shortcut (a mount instead of an upload): a store that fails costs a warning.
    """
    prefix = f"{repository.registry}/"
    try:
        with open_store(source) as store:
            located = store.blob_locations(blob.digest for blob in loaded.blobs)
    except StoreError as exc:
        log.warning("reading where blobs live from the store failed; uploading them: %s", exc)
        return {}
    homes: dict[str, Repository] = {}
    for digest, streams in located.items():
        for stream in streams:
            if stream.startswith(prefix) and stream != repository.name:
                homes[digest] = Repository(repository.registry, stream[len(prefix) :])
    return homes


def _tag_points_at(client: RegistryClient, repository: Repository, tag: str, digest: str) -> bool:
    descriptor = client.resolve(Reference(repository, tag=tag))
    return descriptor is not None and descriptor.digest == digest


def _ensure_blob(
    client: RegistryClient,
    repository: Repository,
    blob: BlobSource,
    *,
    progress: Progress,
    homes: Mapping[str, Repository],
) -> None:
    """One blob, start to finish: present already, mounted from elsewhere, or uploaded."""
    if client.blob_size(repository, blob.digest) is not None:
        return
    if _mounted(client, repository, blob.digest, homes.get(blob.digest)):
        return
    progress.begin([Layer(blob.digest, blob.size, blob.media_type)])
    try:
        with blob.open() as stream:
            counted = _CountedUpload(stream, blob.digest, progress)
            client.upload_blob(
                repository,
                counted,
                blob.digest,
                blob.size,
                chunk_size=UPLOAD_CHUNK,
                check_exists=False,
            )
    finally:
        progress.finish(blob.digest)


class _CountedUpload:
    def __init__(self, stream: Readable, digest: str, progress: Progress) -> None:
        self._stream = stream
        self._digest = digest
        self._progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._progress.advance(self._digest, len(data))
        return data


def _record_push(
    source: Source,
    repository: Repository,
    digest: str,
    tags: Sequence[str],
    blobs: tuple[str, ...],
    now: Clock,
) -> None:
    """With a persistent store: the push, and the tags now pointing at the digest."""
    unique = tuple(dict.fromkeys(tags))
    observation = Observation(
        stream=repository.name, taken_at=now(), resolved=dict.fromkeys(unique, digest)
    )
    record_aside(
        source, repository.name, observation, [ImagePushed(digest=digest, tags=unique, blobs=blobs)]
    )

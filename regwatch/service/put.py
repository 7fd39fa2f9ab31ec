"""Concourse `out`: push an image under its tags and aliases, and record the push."""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from regwatch.errors import ConfigError, RegwatchError, StoreError, prefixed, transient
from regwatch.events import ImagePushed
from regwatch.gofilepath import escape, glob, join
from regwatch.image.loading import load_image
from regwatch.image.pushes import BlobSource, LoadedImage
from regwatch.net import Readable
from regwatch.observe import Observation
from regwatch.projections.aliases import decide_aliases, version_tag
from regwatch.refs import Reference, Repository, parse_tag
from regwatch.registry.client import RegistryClient
from regwatch.retrying import retry
from regwatch.service.unpack import NoProgress, Progress
from regwatch.specs import Metadata, Pushed, PushSpec, TagDigest, WatchSpec

if TYPE_CHECKING:
    from regwatch.service.app import Service
    from regwatch.service.signing import Signer
from regwatch.versioning import Version as SemVersion
from regwatch.versioning import parse_version, why_not_a_version

log = logging.getLogger(__name__)


UPLOAD_CHUNK = 64 * 1024 * 1024
"""Blobs larger than this go up in several PATCH requests."""


PARALLEL_UPLOADS = 4


def put(
    service: Service,
    spec: WatchSpec,
    push: PushSpec,
    sources: Path,
    *,
    progress: Progress | None = None,
) -> Pushed:
    """Concourse `out`: push the image at `push.image` under the computed tags (spec §6.6)."""
    repository = spec.repository
    tags = _tags_to_push(service, spec, push, sources)
    image_path = _glob_one(sources, push.image)
    signer = _signer(service, spec, push)
    try:
        loaded = load_image(image_path)
    except RegwatchError as exc:
        raise prefixed(exc, f"could not load image from path '{push.image}'") from exc
    homes = _blob_homes(service, repository, loaded) if service.persistent else {}
    with loaded:
        try:
            _push_with_retries(service, spec, loaded, tags, progress or NoProgress(), homes, signer)
        except RegwatchError as exc:
            raise prefixed(exc, "pushing image failed") from exc
        digest = loaded.top.digest
    blobs = tuple(blob.descriptor.digest for blob in loaded.blobs)
    _record_push(service, repository, digest, tags, blobs)
    return Pushed(
        TagDigest(tag=tags[0], digest=digest),
        [Metadata("repository", spec.shown), Metadata("tags", " ".join(tags))],
    )


def _tags_to_push(
    service: Service, spec: WatchSpec, params: PushSpec, source_dir: Path
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
    variant = spec.selection.variant
    tags: list[str] = [spec.selection.tag] if spec.selection.tag else []
    if version is not None:
        tags.append(_valid(version_tag(version, variant), "params.version"))
        if params.bump_aliases and not version.prerelease:
            for alias in decide_aliases([], version, variant).aliases:
                _valid(alias, "params.version with bump_aliases")
            try:
                existing = _observe_listing(service, spec)
            except RegwatchError as exc:
                raise prefixed(exc, "determine aliases") from exc
            decision = decide_aliases(existing, version, variant)
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


def _observe_listing(service: Service, spec: WatchSpec) -> list[str]:
    """List the repository's tags for the aliases; a persistent store records the listing.

    Without a store nothing would keep the record, so none is made.
    """
    repository = spec.repository
    client = service.clients.client(repository.registry, spec.access)
    listed = tuple(client.list_tags(repository, new_ok=True))
    observation = Observation(stream=repository.name, taken_at=service.now(), listed=listed)
    service.record_aside(repository.name, observation)
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


def _signer(service: Service, spec: WatchSpec, push: PushSpec) -> Signer | None:
    """The content-trust signer, its key loaded: a bad key or passphrase fails before a push."""
    if push.signing is None:
        return None
    from regwatch.service.signing import Signer  # noqa: PLC0415  # only a signing put pays

    try:
        return Signer(service, spec.repository, spec.access, push.signing)
    except RegwatchError as exc:
        raise prefixed(exc, "pushing image failed: signing image(s)") from exc


def _push_with_retries(
    service: Service,
    spec: WatchSpec,
    loaded: LoadedImage,
    tags: Sequence[str],
    progress: Progress,
    homes: Mapping[str, Repository],
    signer: Signer | None,
) -> None:
    """The whole push and its signing, retried on transient failures; a retry starts with a
    fresh client."""
    repository, access = spec.repository, spec.access

    def attempt() -> None:
        client = service.clients.client(repository.registry, access)
        _push(client, repository, loaded, tags, progress, homes)
        if signer is not None:
            top = loaded.top
            try:
                signer.sign(tags, top.digest, len(top.body))
            except RegwatchError as exc:
                raise prefixed(exc, "signing image(s)") from exc

    def afresh() -> bool:
        service.clients.forget(repository.registry, access)
        return True

    retry(
        attempt, policy=service.retry, transient=transient, before_retry=afresh, sleep=service.sleep
    )


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
    service: Service, repository: Repository, loaded: LoadedImage
) -> dict[str, Repository]:
    """Other repositories of this registry that the store's blob locations say hold our blobs.

    Only a shortcut (a mount instead of an upload): a store that fails costs a warning.
    """
    prefix = f"{repository.registry}/"
    try:
        located = service.store().blob_locations(blob.descriptor.digest for blob in loaded.blobs)
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
    digest = blob.descriptor.digest
    if client.blob_size(repository, digest) is not None:
        return
    if _mounted(client, repository, digest, homes.get(digest)):
        return
    progress.begin([blob.descriptor])
    try:
        with blob.open() as stream:
            counted = _CountedUpload(stream, digest, progress)
            client.upload_blob(
                repository,
                counted,
                digest,
                blob.descriptor.size,
                chunk_size=UPLOAD_CHUNK,
                check_exists=False,
            )
    finally:
        progress.finish(digest)


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
    service: Service,
    repository: Repository,
    digest: str,
    tags: Sequence[str],
    blobs: tuple[str, ...],
) -> None:
    """With a persistent store: the push, and the tags now pointing at the digest."""
    if not service.persistent:
        return
    unique = tuple(dict.fromkeys(tags))
    observation = Observation(
        stream=repository.name, taken_at=service.now(), resolved=dict.fromkeys(unique, digest)
    )
    pushed = ImagePushed(digest=digest, tags=unique, blobs=blobs)
    service.record_aside(repository.name, observation, [pushed])

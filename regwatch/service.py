"""The use cases, the one place that wires registry, observations, store and projections.

Front ends call these functions and nothing deeper, so every front end shares one path: the
stateless Concourse `check` runs the same observe → decide → append → project flow as the
daemon will, on a throw-away store unless `source.store` names a persistent one.
"""

from __future__ import annotations

import glob
import json
import logging
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from regwatch.config import GetParams, PutParams, Source, Version
from regwatch.decide import RepoState, decide, fold
from regwatch.download import (
    ImageSource,
    NoProgress,
    PlatformImage,
    Progress,
    write_rootfs,
    write_small_file,
)
from regwatch.download import (
    Layer as Layer,
)
from regwatch.errors import (
    ConfigError,
    Conflict,
    ConnectionDropped,
    NotFound,
    RateLimited,
    RegistryError,
    RegwatchError,
    UnsupportedMedia,
)
from regwatch.events import (
    SCHEMA_VERSION,
    Event,
    ImagePushed,
    PollSucceeded,
    from_payload,
    to_payload,
)
from regwatch.image.loading import BlobSource, LoadedImage, load_image
from regwatch.image.manifests import Platform, is_index, select_child, wanted_platform
from regwatch.image.ocilayout import write_image_tarball, write_oci_layout
from regwatch.net import Readable, RetryPolicy, Transport
from regwatch.observe import ImageFacts, Observation, observe
from regwatch.projections.aliases import decide_aliases, version_tag
from regwatch.projections.versions import check_versions
from regwatch.refs import (
    Reference,
    Repository,
    parse_digest,
    parse_reference,
    parse_registry,
    parse_repository,
)
from regwatch.registry.auth import Credentials
from regwatch.registry.client import Manifest, RegistryClient
from regwatch.versioning import Version as SemVersion
from regwatch.versioning import parse_version

if TYPE_CHECKING:
    from regwatch.store.eventstore import EventStore, NewEvent

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Access:
    """How to reach a registry: who we are and which roots we trust."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_certs: Sequence[str] = ()
    insecure: bool = False

    @property
    def credentials(self) -> Credentials | None:
        """Basic credentials only when both halves are given, as the Go resource does."""
        if self.username and self.password:
            return Credentials(self.username, self.password)
        return None


def connect(registry: str, access: Access, transport: Transport | None = None) -> RegistryClient:
    return RegistryClient(
        registry,
        transport or Transport(ca_certs=access.ca_certs),
        access.credentials,
        insecure=access.insecure,
    )


def list_tags(repository: str, access: Access) -> list[str]:
    repo = parse_repository(repository)
    return connect(repo.registry, access).list_tags(repo)


def resolve_digest(reference: str, access: Access) -> str:
    """The digest a tag (or digest) reference names right now, HEAD first."""
    ref = parse_reference(reference)
    descriptor = connect(ref.repository.registry, access).resolve(ref)
    if descriptor is None:
        raise NotFound(f"resolve {ref}: manifest unknown", 404)
    return descriptor.digest


# -- check --------------------------------------------------------------------------------------


def check(source: Source, cursor: Version | None, *, now: Clock = utc_now) -> list[Version]:
    """Concourse `check`: the mirror first for Docker Hub images, then the origin (spec §3–4)."""
    _refuse_unsupported(source)
    origin = _parse_origin(source)
    mirror = _mirror_of(origin, source)
    with _open_store(source) as store:
        if mirror is not None:
            mirror_repo, mirror_access = mirror
            try:
                found = _check_repository(
                    store, origin, mirror_repo, mirror_access, source, cursor, now
                )
            except RegwatchError as exc:
                log.warning("checking mirror %s failed: %s", mirror_repo, exc)
            else:
                if found:
                    return found
                log.warning("checking mirror %s failed: tag not found", mirror_repo)
        try:
            return _check_repository(store, origin, origin, _access(source), source, cursor, now)
        except RegwatchError as exc:
            raise _prefixed(exc, f"checking origin {source.repository} failed") from exc


def _check_repository(
    store: EventStore,
    origin: Repository,
    repository: Repository,
    access: Access,
    source: Source,
    cursor: Version | None,
    now: Clock,
) -> list[Version]:
    """Observe one repository, record what changed under the origin's stream, project."""
    transport = Transport(ca_certs=access.ca_certs, pool_size=max(16, source.concurrency))
    try:
        reader = _Reader(connect(repository.registry, access, transport), repository, source)
        stream = origin.name
        state, version = _load(store, stream)
        started = time.monotonic()
        observation = observe(
            reader, source, cursor, stream=stream, now=now, known_images=frozenset(state.images)
        )
        poll = PollSucceeded(
            requests=transport.requests_sent, duration_seconds=round(time.monotonic() - started, 3)
        )
        state = _record(store, stream, state, version, observation, extra=[poll])
        return check_versions(state, observation, source, cursor)
    finally:
        transport.close()


def _record(
    store: EventStore,
    stream: str,
    state: RepoState,
    version: int,
    observation: Observation,
    extra: Sequence[Event] = (),
) -> RepoState:
    """Append what the observation changed (plus `extra`); on a conflict, reload and redo once."""

    def append(state: RepoState, version: int) -> list[Event]:
        events = decide(state, observation)
        new = [_new_event(e, observation.taken_at) for e in (*events, *extra)]
        store.append(stream, version, new)
        return events

    try:
        events = append(state, version)
    except Conflict:
        state, version = _load(store, stream)
        events = append(state, version)
    return fold(events, state)


def _load(store: EventStore, stream: str) -> tuple[RepoState, int]:
    stored = store.load(stream)
    events = (from_payload(e.kind, e.schema_version, e.payload) for e in stored)
    return fold(events), (stored[-1].version if stored else 0)


def _new_event(event: Event, observed_at: datetime) -> NewEvent:
    from regwatch.store.eventstore import NewEvent  # noqa: PLC0415  # see _open_store

    return NewEvent(
        kind=event.kind,
        payload=to_payload(event),
        observed_at=observed_at,
        schema_version=SCHEMA_VERSION[event.kind],
    )


def _open_store(source: Source) -> EventStore:
    """The source's store, or a throw-away one; close it with `with`."""
    # Imported here: SQLAlchemy and Alembic add ~0.4 s to start-up, which `tags` and `digest`
    # never need.
    from regwatch.store.migrate import open_store  # noqa: PLC0415

    return open_store(source.store)


def _refuse_unsupported(source: Source) -> None:
    if source.aws_region:
        raise ConfigError("cannot authenticate with ECR: ECR support (aws_region) is not built yet")
    if source.azure_acr:
        raise ConfigError("cannot authenticate with ACR: ACR support (azure_acr) is not built yet")


def _parse_origin(source: Source) -> Repository:
    try:
        return parse_repository(source.repository)
    except ConfigError as exc:
        raise ConfigError(
            f"checking origin {source.repository} failed: resolve repository: {exc}"
        ) from None


def _mirror_of(origin: Repository, source: Source) -> tuple[Repository, Access] | None:
    """The mirror applies to Docker Hub images only, with its own credentials (spec §4)."""
    mirror = source.registry_mirror
    if mirror is None or not mirror.host or not origin.is_docker_hub:
        return None
    try:
        repository = origin.on_registry(parse_registry(mirror.host))
    except ConfigError as exc:
        raise ConfigError(f"failed to resolve mirror: parse mirror registry: {exc}") from None
    access = Access(mirror.username, mirror.password, source.ca_certs, source.insecure)
    return repository, access


def _access(source: Source) -> Access:
    return Access(source.username, source.password, source.ca_certs, source.insecure)


def _prefixed(exc: RegwatchError, prefix: str) -> RegwatchError:
    if isinstance(exc, RegistryError):
        return type(exc)(f"{prefix}: {exc}", exc.status)
    return type(exc)(f"{prefix}: {exc}")


class _Reader:
    """The registry client seen through `observe.RegistryReader`, for one repository."""

    def __init__(self, client: RegistryClient, repository: Repository, source: Source) -> None:
        self._client = client
        self._repository = repository
        self._platform = wanted_platform(
            source.platform.architecture if source.platform else None,
            source.platform.os if source.platform else None,
        )

    def list_tags(self) -> list[str]:
        return self._client.list_tags(self._repository)

    def digest(self, reference: str) -> str | None:
        ref = self._reference(reference)
        descriptor = self._client.resolve(ref)
        return descriptor.digest if descriptor else None

    def inspect(self, digest: str) -> ImageFacts:
        """Manifest, platform child for an index, and the config's `created` (spec §3.4)."""
        manifest = self._client.get_manifest(self._reference(digest))
        document = _json(manifest.body, f"manifest {digest}")
        platforms: tuple[tuple[str, str, str | None, str], ...] = ()
        image = document
        if is_index(manifest.descriptor.media_type) or "manifests" in document:
            platforms = _platforms(document)
            child = select_child(document, self._platform)
            if child is None:
                raise UnsupportedMedia(
                    f"no child with platform {self._platform} in index {self._repository}@{digest}"
                )
            child_manifest = self._client.get_manifest(self._reference(str(child.get("digest"))))
            image = _json(child_manifest.body, f"manifest {child.get('digest')}")
        config = image.get("config")
        if not isinstance(config, dict) or not isinstance(config.get("digest"), str):
            raise UnsupportedMedia(f"manifest {digest} of {self._repository} has no config")
        config_digest = parse_digest(config["digest"])
        with self._client.open_blob(self._repository, config_digest, config.get("size")) as blob:
            config_body = blob.read()
        created = _created(_json(config_body, f"config {config_digest}").get("created"))
        return ImageFacts(
            digest=digest,
            media_type=manifest.descriptor.media_type,
            size=manifest.descriptor.size,
            created=created,
            platforms=platforms,
        )

    def _reference(self, text: str) -> Reference:
        if text.startswith(("sha256:", "sha512:")):
            return Reference(self._repository, digest=parse_digest(text))
        return Reference(self._repository, tag=text)


def _json(body: bytes, what: str) -> dict[str, object]:
    try:
        document = json.loads(body)
    except ValueError:
        raise UnsupportedMedia(f"{what} is not JSON") from None
    if not isinstance(document, dict):
        raise UnsupportedMedia(f"{what} is not a JSON object")
    return document


def _platforms(index: dict[str, object]) -> tuple[tuple[str, str, str | None, str], ...]:
    found = []
    for child in index.get("manifests") or ():  # type: ignore[attr-defined]
        if isinstance(child, dict) and isinstance(child.get("platform"), dict):
            platform = child["platform"]
            found.append(
                (
                    str(platform.get("os", "")),
                    str(platform.get("architecture", "")),
                    platform.get("variant"),
                    str(child.get("digest", "")),
                )
            )
    return tuple(found)


_FRACTION = re.compile(r"(\.\d{6})\d+")


def _created(value: object) -> datetime | None:
    """The config's RFC 3339 `created` (nanoseconds cut to microseconds); None when absent."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# -- in (get) -----------------------------------------------------------------------------------

FORMATS = ("rootfs", "oci", "oci-layout")


@dataclass(frozen=True)
class Metadata:
    name: str
    value: str


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
    _refuse_unsupported(source)
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
    mirror = _mirror_of(origin, source)
    if mirror is not None:
        mirror_repo, mirror_access = mirror
        try:
            fetched = plan.download(mirror_repo, mirror_access, sleep)
        except RegwatchError as exc:
            log.warning("download from mirror %s failed: %s", mirror_repo, exc)
            plan.clean()
    if fetched is None:
        try:
            fetched = plan.download(origin, _access(source), sleep)
        except RegwatchError as exc:
            plan.clean()
            raise _prefixed(exc, "download failed") from exc
    try:
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
        try:
            metadata = _metadata(source, version, fetched, platform)
        except RegwatchError as exc:
            raise _prefixed(exc, "enriching metadata failed") from exc
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
                if not _transient(exc) or time.monotonic() - started + delay > policy.budget:
                    raise
                log.warning("transient error: %s; retrying in %.1fs", exc, delay)
                self.clean()
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
                raise _prefixed(exc, "fetch descriptor") from exc
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

    def clean(self) -> None:
        """Remove what a failed attempt wrote, so the next one starts clean (quirk Q12)."""
        for name in ("rootfs", "oci", "image.tar", "metadata.json", "labels.json"):
            path = self.destination / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        for leftover in self.destination.glob(".regwatch-layers-*"):
            shutil.rmtree(leftover, ignore_errors=True)


def _transient(exc: RegwatchError) -> bool:
    """Worth another whole attempt: rate limits, dropped connections, 5xx (spec §7)."""
    if isinstance(exc, RateLimited | ConnectionDropped):
        return True
    return isinstance(exc, RegistryError) and exc.status is not None and exc.status >= 500


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
            Metadata(k, v) for k, v in sorted(image.labels.items()) if label_pattern.search(k)
        ]
    if annotation_pattern:
        found += [
            Metadata(k, v)
            for k, v in sorted(image.annotations.items())
            if annotation_pattern.search(k)
        ]
    return found


def _compile(pattern: str | None, field_name: str) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"invalid {field_name}: {exc}") from None


def _image_metadata(image: PlatformImage) -> str:
    """metadata.json: cmd, entrypoint, env, user, in that order (spec §6.3)."""
    config = image.config.get("config") or {}
    return _go_json(
        {
            "cmd": config.get("Cmd"),
            "entrypoint": config.get("Entrypoint"),
            "env": config.get("Env"),
            "user": config.get("User") or "",
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


def _blobs_of(image: PlatformImage | None) -> tuple[str, ...]:
    if image is None:
        return ()
    return (image.config_digest, *(layer.digest for layer in image.layers))


def _record_inspection(source: Source, origin: Repository, fetched: _Fetched, now: Clock) -> None:
    """With a persistent store, remember what the image is (once per digest)."""
    top = fetched.top
    created = _created(fetched.image.config.get("created")) if fetched.image else None
    facts = ImageFacts(
        digest=top.descriptor.digest,
        media_type=top.descriptor.media_type,
        size=top.descriptor.size,
        created=created,
        platforms=_platforms(_json(top.body, "manifest")),
        blobs=_blobs_of(fetched.image),
    )
    observation = Observation(stream=origin.name, taken_at=now(), inspected=(facts,))
    with _open_store(source) as store:
        state, version = _load(store, origin.name)
        _record(store, origin.name, state, version, observation)


# -- out (put) ----------------------------------------------------------------------------------

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
    _refuse_unsupported(source)
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
        raise _prefixed(exc, f"could not load image from path '{params.image}'") from exc
    homes = _blob_homes(source, repository, loaded) if source.store else {}
    with loaded:
        try:
            shown = progress or NoProgress()
            _push_with_retries(repository, _access(source), loaded, tags, shown, sleep, homes)
        except RegwatchError as exc:
            raise _prefixed(exc, "pushing image failed") from exc
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
    """source tag, version tag, aliases, additional tags: in that order (spec §6.6)."""
    tags: list[str] = [source.tag] if source.tag else []
    if params.version:
        version = _out_version(params.version)
        tags.append(version_tag(version, source.variant))
        if params.bump_aliases and not version.prerelease:
            try:
                existing = _observe_listing(source, repository, now)
            except RegwatchError as exc:
                raise _prefixed(exc, "determine aliases") from exc
            decision = decide_aliases(existing, version, source.variant)
            for reason in decision.held_back:
                log.info("%s", reason)
            tags.extend(decision.aliases)
    extra = _additional_tags(source_dir, params.additional_tags)
    if params.tag_prefix and not extra:
        raise ConfigError("tag_prefix can only be used when additional_tags are specified")
    tags.extend(f"{params.tag_prefix or ''}{tag}" for tag in extra)
    if not tags:
        raise ConfigError("no tag specified - need either 'version:' in params or 'tag:' in source")
    return tags


_LOOSE_VERSION = re.compile(r"v?[0-9]+(\.[0-9]+){0,2}(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")


def _out_version(text: str) -> SemVersion:
    version = parse_version(text)
    if version is not None:
        return version
    if _LOOSE_VERSION.fullmatch(text):
        raise ConfigError("failed to parse version: version segment starts with 0")
    raise ConfigError(f'invalid semantic version: "{text}"')


def _observe_listing(source: Source, repository: Repository, now: Clock) -> list[str]:
    """List the repository's tags and record the listing, so the aliases come from the log."""
    client = connect(repository.registry, _access(source))
    listed = tuple(client.list_tags(repository, new_ok=True))
    observation = Observation(stream=repository.name, taken_at=now(), listed=listed)
    with _open_store(source) as store:
        state, version = _load(store, repository.name)
        _record(store, repository.name, state, version, observation)
    return list(listed)


def _additional_tags(source_dir: Path, name: str | None) -> list[str]:
    if not name:
        return []
    path = source_dir / name
    try:
        return path.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f'could not parse additional tags: failed to read file at "{path}": {reason}'
        ) from exc


def _glob_one(source_dir: Path, pattern: str) -> Path:
    """Exactly one path matching `pattern` below the sources directory."""
    if pattern.count("[") != pattern.count("]"):
        raise ConfigError(f"failed to glob path '{pattern}': syntax error in pattern")
    matches = sorted(glob.glob(str(source_dir / pattern), include_hidden=True))
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
            if not _transient(exc) or time.monotonic() - started + delay > policy.budget:
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
        missing = [
            blob
            for blob in loaded.blobs
            if client.blob_size(repository, blob.digest) is None
            and not _mounted(client, repository, blob.digest, homes.get(blob.digest))
        ]
        progress.begin([Layer(b.digest, b.size, b.media_type) for b in missing])
        _in_parallel([partial(_upload, client, repository, blob, progress) for blob in missing])
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


def _put_tag(
    client: RegistryClient, repository: Repository, body: bytes, media_type: str, tag: str
) -> None:
    client.put_manifest(Reference(repository, tag=tag), body, media_type)


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
    """Other repositories of this registry that the log says hold our blobs."""
    wanted = {blob.digest for blob in loaded.blobs}
    prefix = f"{repository.registry}/"
    homes: dict[str, Repository] = {}
    with _open_store(source) as store:
        for stored in store.read_all():
            if not stored.stream.startswith(prefix) or stored.stream == repository.name:
                continue
            if stored.kind not in ("ImageInspected", "ImagePushed"):
                continue
            for digest in stored.payload.get("blobs") or ():
                if digest in wanted:
                    homes[digest] = Repository(repository.registry, stored.stream[len(prefix) :])
    return homes


def _tag_points_at(client: RegistryClient, repository: Repository, tag: str, digest: str) -> bool:
    descriptor = client.resolve(Reference(repository, tag=tag))
    return descriptor is not None and descriptor.digest == digest


def _upload(
    client: RegistryClient, repository: Repository, blob: BlobSource, progress: Progress
) -> None:
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
    with _open_store(source) as store:
        state, version = _load(store, repository.name)
        _record(
            store,
            repository.name,
            state,
            version,
            observation,
            extra=[ImagePushed(digest=digest, tags=unique, blobs=blobs)],
        )

"""Concourse `check`: a poll of the mirror first for Docker Hub images, then the origin's, and
the versions projected from the state the poll left (spec §3–4).

A mirror's poll is recorded under the mirror's own stream: the origin's history holds only
what the origin said. With `max_age` (and a store), each of those polls is first looked for in
the log: when the repository's newest successful poll is younger than `max_age` and asked
everything this check would ask (`projections.coverage`), the answer is projected from the log
with no registry client made at all, and nothing is recorded (a check that polled records its
run, so the next one benefits).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from regwatch.durations import shown
from regwatch.errors import RegwatchError, prefixed
from regwatch.events import PollSucceeded, from_payload, run_stream
from regwatch.projections.coverage import Coverage, NotCovered, replayed
from regwatch.projections.versions import check_versions
from regwatch.service.recording import load_state
from regwatch.specs import TagDigest, WatchSpec

if TYPE_CHECKING:
    from regwatch.service.app import Service

log = logging.getLogger(__name__)


def check(service: Service, spec: WatchSpec, cursor: TagDigest | None) -> list[TagDigest]:
    if spec.selection.tag and spec.selection.tag_regex:
        log.warning(
            "tag_regex is ignored: tag %r is set, and tag wins (tag mode)", spec.selection.tag
        )
    if service.persistent and (spec.max_age is None or service.existing_store() is None):
        # A store that cannot be opened fails the check before any request. One that exists
        # at this regwatch's revision is opened with one query, without loading Alembic (~0.3 s
        # of a check that may be answered from the log); a new one is created as usual.
        service.store()
    if spec.mirror is not None:
        mirrored = dataclasses.replace(
            spec, repository=spec.mirror.repository, access=spec.mirror.access, mirror=None
        )
        failed = f"checking mirror {spec.mirror.repository} failed"
        try:
            found = _versions(service, mirrored, cursor, failed)
        except RegwatchError as exc:
            log.warning("%s: %s", failed, exc)
        else:
            if found:
                return found
            log.warning("%s: tag not found", failed)
    failed = f"checking origin {spec.shown} failed"
    try:
        return _versions(service, spec, cursor, failed)
    except RegwatchError as exc:
        raise prefixed(exc, failed) from exc


def _versions(
    service: Service, spec: WatchSpec, cursor: TagDigest | None, failed: str
) -> list[TagDigest]:
    if spec.max_age is not None and service.persistent:
        logged = _from_log(service, spec, cursor, spec.max_age)
        if logged is not None:
            return logged
    # Imported here: the registry client and requests cost a check answered from the log
    # ~0.2 s of start-up for nothing.
    from regwatch.service.polling import poll  # noqa: PLC0415

    done = poll(service, spec, cursor, failed=failed)
    return check_versions(done.state, done.observation, spec.selection, cursor)


def _from_log(
    service: Service, spec: WatchSpec, cursor: TagDigest | None, max_age: timedelta
) -> list[TagDigest] | None:
    """The answer from the log, or None when no fresh successful poll covers this check.

    Fresh means observed less than `max_age` from now either way: a fleet member's clock
    that runs ahead does not make its polls fresh for longer. Only the newest success counts,
    so the answer never comes from an older listing than the log's newest.
    """
    store = service.store()
    stream = spec.repository.name
    stored = store.latest(run_stream(stream), "PollSucceeded")
    if stored is None:
        log.debug("%s: polling: the log holds no successful poll", stream)
        return None
    age = service.now() - stored.observed_at
    if abs(age) >= max_age:
        log.debug(
            "%s: polling: the newest successful poll is %s old (max_age %s)",
            stream,
            shown(abs(age)),
            shown(max_age),
        )
        return None
    run = from_payload(stored.kind, stored.schema_version, stored.payload)
    if not isinstance(run, PollSucceeded):  # the query asked for this kind only
        return None
    state, _ = load_state(store, stream)
    try:
        observation = replayed(
            state,
            Coverage.of(run, stored.observed_at),
            spec.selection,
            cursor,
            stream=stream,
            concurrency=spec.concurrency,
        )
    except NotCovered as exc:
        log.debug(
            "%s: polling: the newest successful poll does not cover this check: %s", stream, exc
        )
        return None
    log.debug(
        "%s: answered from the poll of %s ago (run %d)", stream, shown(abs(age)), stored.version
    )
    return check_versions(state, observation, spec.selection, cursor)

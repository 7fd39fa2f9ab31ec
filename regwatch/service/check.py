"""Concourse `check`: a poll of the mirror first for Docker Hub images, then the origin's, and
the versions projected from the state the poll left (spec §3–4).

A mirror's poll is recorded under the mirror's own stream: the origin's history holds only
what the origin said.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from regwatch.errors import RegwatchError, prefixed
from regwatch.projections.versions import check_versions
from regwatch.service.polling import poll
from regwatch.specs import TagDigest, WatchSpec

if TYPE_CHECKING:
    from regwatch.service.app import Service

log = logging.getLogger(__name__)


def check(service: Service, spec: WatchSpec, cursor: TagDigest | None) -> list[TagDigest]:
    if spec.selection.tag and spec.selection.tag_regex:
        log.warning(
            "tag_regex is ignored: tag %r is set, and tag wins (tag mode)", spec.selection.tag
        )
    if service.persistent:
        service.store()  # a store that cannot be opened fails the check before any request
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
    done = poll(service, spec, cursor, failed=failed)
    return check_versions(done.state, done.observation, spec.selection, cursor)

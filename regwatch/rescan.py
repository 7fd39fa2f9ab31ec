"""Which known tags a daemon poll re-verifies: mutable tags always, full versions once per rescan.

A full version (`1.21.5`, `v1.21.5`, `1.21.5-alpine`, `1.21.5+build`) is normally written once;
a partial one (`3`, `3.19`), `latest`, `stable` or `3-alpine` moves whenever a release does.
Asking the registry about every known version on every poll is what the Go resource does, and
what spends a registry's rate limit for nothing, so a poll that knows the repository resolves
new tags and mutable ones, and only the share of known versions that is due.

Each full version has a phase in the rescan cycle fixed by a stable hash of its name; it is due
in the poll whose window (the previous poll of the watch, this poll] holds a multiple of the
cycle plus that phase. Windows of consecutive polls touch, so every known version is verified
at least once per cycle whatever the polls' spacing (jitter, a slow poll), and the work is
spread evenly over the polls instead of falling on one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from regwatch.versioning import parse_version

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_HASH_SPACE = 2**64


def is_full_version(tag: str) -> bool:
    """A version with major, minor and patch written out; such a tag is not expected to move."""
    if parse_version(tag) is None:
        return False
    core = tag.removeprefix("v").partition("+")[0].partition("-")[0]
    return core.count(".") == 2


def phase(tag: str, cycle: timedelta) -> timedelta:
    """Where in the cycle `tag` falls due: a hash of its name, the same in every process."""
    digest = hashlib.sha256(tag.encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / _HASH_SPACE
    return timedelta(microseconds=int(fraction * (cycle // timedelta(microseconds=1))))


@dataclass(frozen=True)
class Rescan:
    """One poll's share of the cycle: `since` is the watch's previous successful poll, or None
    when it is unknown (then every known version is due: nothing says when it was verified)."""

    cycle: timedelta
    now: datetime
    since: datetime | None = None

    def due(self, tag: str) -> bool:
        """Whether `tag`'s turn in the cycle fell in (since, now]."""
        if self.since is None or self.now - self.since >= self.cycle or self.cycle <= timedelta():
            return True
        if self.now <= self.since:
            return False
        offset = phase(tag, self.cycle)
        # The last instant at or before `now` when the tag fell due.
        turns = (self.now - _EPOCH - offset) // self.cycle
        last_due = _EPOCH + offset + turns * self.cycle
        return last_due > self.since

    def wanted(self, tags: Iterable[str], known: Collection[str]) -> list[str]:
        """Of `tags`, in order, those to resolve: new ones, mutable ones, and due versions."""
        return [t for t in tags if t not in known or not is_full_version(t) or self.due(t)]

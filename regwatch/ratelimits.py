"""What registries say is left of their rate limit (`ratelimit-remaining: 76;w=21600`), per host.

Docker Hub counts manifest GETs against 100 pulls per 6 h for anonymous users and announces the
budget on its answers. The transport notes the latest figure of each host; a daemon's poll asks
whether the budget is low before it spends GETs that can wait for the next window (config
blobs for created times). HEADs and listings are what a poll is for, so they are never held back.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

RESERVE_SHARE: Final = 0.1
"""The part of the limit kept for work that cannot wait (at least one request)."""

_COUNT = re.compile(r"\s*([0-9]{1,18})")


@dataclass(frozen=True)
class Budget:
    """A host's limit and what is left of it, as its latest answer said."""

    limit: int
    remaining: int

    @property
    def low(self) -> bool:
        """Below the reserve: 10% of the limit, at least 1."""
        return self.remaining < max(1, int(self.limit * RESERVE_SHARE))


def parse_count(value: str | None) -> int | None:
    """The count in front of a `ratelimit-*` header's parameters (`100;w=21600` → 100)."""
    match = _COUNT.match(value or "")
    return int(match.group(1)) if match else None


class RateLimits:
    """The latest budget each host announced; shared by every thread of a transport."""

    def __init__(self) -> None:
        self._budgets: dict[str, Budget] = {}
        self._lock = threading.Lock()

    def note(self, host: str, headers: Mapping[str, str]) -> None:
        """Keep what an answer from `host` said, when it said both figures."""
        limit = parse_count(headers.get("ratelimit-limit"))
        remaining = parse_count(headers.get("ratelimit-remaining"))
        if limit is None or remaining is None:
            return
        with self._lock:
            self._budgets[host] = Budget(limit, remaining)

    def budget(self, host: str) -> Budget | None:
        with self._lock:
            return self._budgets.get(host)

    def low(self, host: str) -> bool:
        """Whether `host` last said its budget is below the reserve; unknown is not low."""
        budget = self.budget(host)
        return budget is not None and budget.low

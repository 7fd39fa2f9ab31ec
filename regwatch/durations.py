"""Durations as people write them in a config: `30s`, `5m`, `24h`, `30d`, `1h30m`.

A number and a unit, repeated; a bare number has no unit and is refused, as is anything else,
with the reason in words the caller puts after the key's name.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Final

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?[smhd])+")

LONGEST: Final = timedelta(days=3650)
"""Ten years: what no interval or retention needs to exceed, and what keeps the arithmetic sane."""


def parse_duration(text: str) -> timedelta:
    """`1h30m` → 1.5 hours. ValueError says what is wrong, without naming the key."""
    written = text.strip()
    if not _WHOLE.fullmatch(written):
        raise ValueError(
            f"{text!r} is not a duration: write a number and a unit (s, m, h or d), "
            "such as 30s, 5m, 24h or 1h30m"
        )
    seconds = sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(written))
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a duration longer than zero")
    if seconds > LONGEST.total_seconds():
        raise ValueError(f"{text!r} is longer than ten years")
    return timedelta(seconds=seconds)


def shown(duration: timedelta) -> str:
    """A duration the way a config writes it (`1h30m`, `45s`), for messages and `status`."""
    seconds = round(duration.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"

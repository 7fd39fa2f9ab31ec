"""What a `notify:` entry of the daemon's config asks for, once the config has checked it.

Front ends build these values; the follower and the sinks read nothing else. A target's URL,
secret and header values may be secrets: no `repr` shows them and no message quotes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

KINDS: Final = ("appeared", "moved", "disappeared", "repush", "rollback", "failed", "initial")
"""The words `kinds` takes; `repush` and `rollback` are moves so flagged (decisions.md)."""


@dataclass(frozen=True)
class Webhook:
    """POST of a CloudEvent; signed with HMAC-SHA256 when `secret` is given."""

    url: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Slack:
    """A Slack-compatible incoming webhook: one line per event."""

    url: str = field(repr=False)


@dataclass(frozen=True)
class Command:
    """A program run per event: the CloudEvent on stdin, exit 0 means delivered."""

    argv: tuple[str, ...]


@dataclass(frozen=True)
class Apprise:
    """Any service Apprise speaks, by its URL (`pip install 'regwatch[apprise]'`)."""

    url: str = field(repr=False)


Target = Webhook | Slack | Command | Apprise


@dataclass(frozen=True)
class SinkSettings:
    """One sink: its name (the checkpoint is `sink:<name>`), filters and target."""

    name: str
    target: Target
    repositories: frozenset[str]
    """Canonical repositories of the watches it follows: their tag events pass."""
    watches: frozenset[str]
    """Watch names whose watch events (`initial`, `failed`) pass."""
    kinds: frozenset[str] | None = None
    """None: every kind."""
    announce_initial: bool = True

    @property
    def checkpoint(self) -> str:
        return f"sink:{self.name}"

    @property
    def type(self) -> str:
        return type(self.target).__name__.lower()

    def wants(self, words: frozenset[str]) -> bool:
        """Whether an event described by `words` (its kind and flags) passes `kinds`."""
        return self.kinds is None or bool(words & self.kinds)

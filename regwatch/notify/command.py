"""The command sink: a program run per notice, the CloudEvent on its stdin.

Its environment is the daemon's plus `REGWATCH_KIND`, `REGWATCH_REPOSITORY`, `REGWATCH_TAG`,
`REGWATCH_DIGEST` and `REGWATCH_PREVIOUS_DIGEST` (empty where a notice has none); exit 0 means
delivered. A program that outlives `DEADLINE` is killed and the notice stays pending.
"""

from __future__ import annotations

import os
import subprocess
from typing import Final

from regwatch.errors import DeliveryFailed
from regwatch.notify.cloudevents import body
from regwatch.notify.notices import Notice
from regwatch.notify.settings import Command

DEADLINE: Final = 30.0
"""Seconds a command gets per notice."""


def environment(notice: Notice) -> dict[str, str]:
    tag = "" if notice.watch is not None else notice.subject
    return {
        "REGWATCH_KIND": notice.kind,
        "REGWATCH_REPOSITORY": notice.repository,
        "REGWATCH_TAG": tag,
        "REGWATCH_DIGEST": notice.digest,
        "REGWATCH_PREVIOUS_DIGEST": notice.previous_digest,
    }


class CommandSink:
    def __init__(self, name: str, target: Command, deadline: float = DEADLINE) -> None:
        self._name = name
        self._argv = target.argv
        self._deadline = deadline

    def deliver(self, notice: Notice) -> None:
        program = self._argv[0]
        try:
            done = subprocess.run(  # noqa: S603  # the user's own program, no shell
                self._argv,
                input=body(notice),
                env={**os.environ, **environment(notice)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=self._deadline,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DeliveryFailed(
                f"sink {self._name}: {program} did not finish within {self._deadline:g} s"
            ) from exc
        except OSError as exc:
            reason = (exc.strerror or type(exc).__name__).lower()
            raise DeliveryFailed(f"sink {self._name}: cannot run {program}: {reason}") from exc
        if done.returncode != 0:
            raise DeliveryFailed(f"sink {self._name}: {program} exited {done.returncode}")

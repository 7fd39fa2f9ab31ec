"""Driving the Concourse steps as Concourse does: a subprocess, JSON on stdin, JSON on stdout."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regwatch.net import Transport
from regwatch.registry.client import RegistryClient
from regwatch.registry.credentials import StaticCredentials
from tests.registries import RegistryServer


@dataclass(frozen=True)
class Run:
    code: int
    answer: Any
    """The JSON document on stdout when the step succeeded, else stdout as text."""
    stderr: str


def regwatch_command() -> list[str]:
    """The installed console script, falling back to `python -m regwatch`."""
    script = shutil.which("regwatch")
    return [script] if script else [sys.executable, "-m", "regwatch"]


def step(name: str, request: Mapping[str, Any] | str, directory: Path | str | None = None) -> Run:
    """Run `regwatch check|in|out [DIRECTORY]` with the request on stdin."""
    command = regwatch_command()
    payload = request if isinstance(request, str) else json.dumps(request)
    done = subprocess.run(
        [*command, name, *([str(directory)] if directory is not None else [])],
        input=payload,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=dict(os.environ),
    )
    answer = json.loads(done.stdout) if done.returncode == 0 else done.stdout
    return Run(done.returncode, answer, done.stderr)


def assert_fails(run: Run, *fragments: str) -> None:
    """Exit 1, nothing on stdout, exactly one `error:` line holding every fragment."""
    assert run.code == 1, run
    assert run.answer == ""
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, run.stderr
    assert "Traceback" not in run.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def client_for(server: RegistryServer) -> RegistryClient:
    credentials = (
        StaticCredentials(server.username, server.password or "") if server.username else None
    )
    transport = Transport(ca_certs=[server.ca_pem] if server.ca_pem else [])
    return RegistryClient(server.host, transport, credentials)


def source_for(server: RegistryServer, repository: str, **extra: Any) -> dict[str, Any]:
    """A `source:` reaching `repository` on `server`, with its CA and credentials."""
    source: dict[str, Any] = {"repository": repository, **extra}
    if server.ca_pem:
        source["ca_certs"] = [server.ca_pem]
    if server.username:
        source.update(username=server.username, password=server.password)
    return source


class Daemon:
    """A `regwatch watch` process writing to a log file; the `daemons` fixture kills those a
    test leaves running."""

    def __init__(
        self,
        config: Path,
        *extra: str,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`name` names the log beside the config (one per daemon of a fleet sharing it)."""
        self.log = config.parent / f"{name}.log" if name else config.with_suffix(".log")
        with self.log.open("w") as sink:
            self.process = subprocess.Popen(
                [*regwatch_command(), "watch", "--config", str(config), *extra],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 40) -> int:
        self.process.send_signal(signum)  # nothing, once it has ended
        return self.process.wait(timeout)

    def output(self) -> str:
        return self.log.read_text()

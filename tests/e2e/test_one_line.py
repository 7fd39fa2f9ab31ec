"""A value from a pipeline cannot forge a line: every message is one line, whatever it quotes.

Through the real CLI: newlines, NUL and Unicode line breaks in a repository, a tag, a regex, a
digest or a field name come back escaped inside one `error:` line, and a library warning raised
during a command is one log line, not a source excerpt.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from regwatch.refs import Repository
from tests import images
from tests.e2e.steps import Run, client_for, source_for, step
from tests.e2e.test_cli import regwatch
from tests.registries import RegistryServer

FORGED = "error: forged line"
VALUES = [
    pytest.param(f"x\n{FORGED}", id="newline"),
    pytest.param("x\x00y", id="nul"),
    pytest.param(f"x\u2028{FORGED}", id="u2028"),
    pytest.param(f"x\u2029{FORGED}", id="u2029"),
    pytest.param(f"x\x85{FORGED}", id="u0085"),
]
CONTROLS = ("\x00", "\x01", "\x85", "\u2028", "\u2029")


def assert_one_line(stderr: str, prefix: str = "error: ") -> str:
    """One `prefix` line on stderr; every line (as any reader splits them) a record of its own."""
    lines = stderr.splitlines()
    errors = [line for line in lines if line.startswith(prefix)]
    assert len(errors) == 1, stderr
    records = (prefix, "INFO: ", "WARNING: ", "DEBUG: ")
    assert all(line.startswith(records) for line in lines), stderr
    assert not any(char in stderr for char in CONTROLS), repr(stderr)
    return errors[0]


def failed_step(run: Run) -> str:
    assert run.code == 1, run
    assert run.answer == ""
    return assert_one_line(run.stderr)


@pytest.mark.parametrize("value", VALUES)
def test_repository(value: str) -> None:
    line = failed_step(step("check", {"source": {"repository": f"127.0.0.1:1/{value}"}}))
    assert "\\" in line


@pytest.mark.parametrize("value", VALUES)
def test_tag(plain_registry: RegistryServer, value: str) -> None:
    """Refused, or looked up and not found: either way no line but the step's own."""
    source = source_for(plain_registry, seed(plain_registry), tag=value)
    run = step("check", {"source": source})
    if run.code == 0:
        assert run.answer == []
        assert FORGED not in run.stderr
    else:
        failed_step(run)


@pytest.mark.parametrize("value", VALUES)
def test_tag_regex(plain_registry: RegistryServer, value: str) -> None:
    repo = seed(plain_registry)
    source = source_for(plain_registry, repo, tag_regex=f"({value}")
    failed_step(step("check", {"source": source}))


@pytest.mark.parametrize("value", VALUES)
def test_digest_of_in(tmp_path: Path, value: str) -> None:
    request = {
        "source": {"repository": "127.0.0.1:1/app"},
        "version": {"tag": "t", "digest": f"sha256:{value}"},
    }
    failed_step(step("in", request, tmp_path / "dest"))


@pytest.mark.parametrize("value", VALUES)
def test_field_name(value: str) -> None:
    failed_step(step("check", f'{{"source": {{"repository": "x"}}, "{_json(value)}": 1}}'))


@pytest.mark.parametrize("value", VALUES)
def test_tags_command(value: str) -> None:
    run = regwatch("tags", f"127.0.0.1:1/{value}".replace("\x00", "\x01"))  # argv has no NUL
    assert run.code == 1
    assert_one_line(run.stderr, "regwatch: ")


def test_a_library_warning_is_one_log_line(plain_registry: RegistryServer, tmp_path: Path) -> None:
    """SQLAlchemy warns about a query argument SQLite ignores: one line, no source excerpt."""
    repo = seed(plain_registry)
    store = f"sqlite:///{tmp_path / 'trail.db'}?cache_size=8"
    for debug in (False, True):
        source: dict[str, Any] = source_for(plain_registry, repo, tag="t", store=store, debug=debug)
        run = step("check", {"source": source})
        assert run.code == 0, run.stderr
        warned = [line for line in run.stderr.splitlines() if "SAWarning" in line]
        assert len(warned) == 1, run.stderr
        assert warned[0].startswith("WARNING: SAWarning: ")
        assert not any(line.startswith(" ") for line in run.stderr.splitlines()), run.stderr
        assert "sa.create_engine" not in run.stderr


def _json(value: str) -> str:
    return json.dumps(value)[1:-1]


def seed(server: RegistryServer) -> str:
    """A fresh repository with one image tagged `t`."""
    repository = Repository(server.host, f"one-line/{uuid.uuid4().hex[:10]}")
    images.push(client_for(server), repository, "t", images.image(repository.name))
    return str(repository)


@pytest.mark.parametrize("value", VALUES)
def test_usage_error(value: str) -> None:
    run = regwatch("tags", "repo", value.replace("\x00", "\x01"))
    assert run.code == 2
    lines = run.stderr.splitlines()
    assert len(lines) == 2, run.stderr
    assert lines[0].startswith("usage: ")
    assert lines[1].startswith("regwatch: error: unrecognized arguments: x\\")

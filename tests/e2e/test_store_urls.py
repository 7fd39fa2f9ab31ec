"""A `store` URL never shows its secrets, and a missing driver says what to install.

Through the real `regwatch check`, with and without `debug: true`: a password in the userinfo
(plain or percent-encoded), in the query under any spelling, or in a libpq key=value string
appears in neither stdout nor stderr, whether the store opens or fails (a refused PostgreSQL
port, a missing directory, a bad port number).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from regwatch.refs import Repository
from tests import images
from tests.e2e.steps import client_for, source_for, step
from tests.registries import RegistryServer

SECRET = "s3cr3t-Pa55"


def refused_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def store_urls(tmp_path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """(URL, the spellings of its secret that must not be shown)."""
    port = refused_port()
    pg = f"postgresql+psycopg://watcher:{SECRET}@127.0.0.1:{port}/trail"
    bare = f"postgresql+psycopg://watcher@127.0.0.1:{port}/trail"
    return [
        (f"sqlite:///{tmp_path / 'trail.db'}?password={SECRET}", (SECRET,)),
        (f"sqlite:///{tmp_path / 'missing' / 'trail.db'}?password={SECRET}", (SECRET,)),
        (f"sqlite:///{tmp_path / 'missing' / 'trail.db'}?PassWord={SECRET}&x=1", (SECRET,)),
        (pg, (SECRET,)),
        (f"{bare}?password={SECRET}", (SECRET,)),
        (f"{bare}?PASSWORD={SECRET}", (SECRET,)),
        (f"{bare}?sslmode=disable&password={SECRET}", (SECRET,)),
        (f"postgresql+psycopg://watcher:{SECRET}%40x%2F@127.0.0.1:{port}/trail", (SECRET,)),
        (f"postgresql+psycopg:///trail?host=/nonexistent&password={SECRET}", (SECRET,)),
        (f"host=127.0.0.1 port={port} dbname=trail password={SECRET}", (SECRET,)),
        (f"postgresql://watcher:{SECRET}@127.0.0.1:notaport/trail", (SECRET,)),
        (f"postgresql+pg8000://watcher:{SECRET}@127.0.0.1:{port}/trail", (SECRET,)),
    ]


@pytest.fixture(scope="module")
def repository(plain_registry: RegistryServer) -> str:
    repo = Repository(plain_registry.host, f"store-urls/{uuid.uuid4().hex[:10]}")
    images.push(client_for(plain_registry), repo, "latest", images.image(repo.name))
    return str(repo)


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("index", range(12))
def test_no_secret_of_a_store_url_is_shown(
    plain_registry: RegistryServer, repository: str, tmp_path: Path, index: int, debug: bool
) -> None:
    url, secrets = store_urls(tmp_path)[index]
    source = source_for(plain_registry, repository, tag="latest", store=url, debug=debug)
    run = step("check", {"source": source})
    shown = f"{run.answer}\n{run.stderr}"
    for secret in secrets:
        assert secret not in shown, shown
    assert "%40x" not in shown
    assert "Traceback" not in run.stderr
    if run.code != 0:
        errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, run.stderr


def test_the_shown_url_keeps_what_helps(plain_registry: RegistryServer, repository: str) -> None:
    port = refused_port()
    url = f"postgresql+psycopg://watcher:{SECRET}@127.0.0.1:{port}/trail?password={SECRET}"
    run = step("check", {"source": source_for(plain_registry, repository, store=url)})
    assert run.code == 1
    assert f"postgresql+psycopg://watcher:***@127.0.0.1:{port}/trail?password=***" in run.stderr


def test_a_libpq_string_is_refused_without_being_quoted(repository: str) -> None:
    run = step("check", {"source": {"repository": repository, "store": f"password={SECRET}"}})
    assert run.code == 1
    assert run.stderr.splitlines() == [
        "error: event store URL is not a valid SQLAlchemy URL (dialect+driver://user@host/database)"
    ]


def _check_with_store(
    url: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    request = {"source": {"repository": "127.0.0.1:1/app", "store": url}}
    script = shutil.which("regwatch")
    return subprocess.run(
        [*([script] if script else [sys.executable, "-m", "regwatch"]), "check"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_an_uninstalled_driver_names_the_extra_to_install(tmp_path: Path) -> None:
    """psycopg hidden from the child: a module of that name that is not there."""
    (tmp_path / "psycopg.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n"
    )
    port = refused_port()
    for url in (
        f"postgresql+psycopg://watcher:{SECRET}@127.0.0.1:{port}/trail",
        f"postgresql://watcher@127.0.0.1:{port}/trail",
    ):
        run = _check_with_store(url, env={"PYTHONPATH": str(tmp_path)})
        assert run.returncode == 1, run
        assert run.stderr.splitlines() == [
            f"error: cannot open event store at {url.replace(SECRET, '***')}: the PostgreSQL"
            " driver psycopg is not installed: pip install 'regwatch[postgres]'"
        ]


def test_another_uninstalled_driver_points_to_the_supported_one() -> None:
    run = _check_with_store(f"postgresql+pg8000://watcher:{SECRET}@127.0.0.1:1/trail")
    assert run.returncode == 1
    (line,) = run.stderr.splitlines()
    assert "driver module pg8000 is not installed" in line
    assert "pip install 'regwatch[postgres]'" in line
    assert SECRET not in line

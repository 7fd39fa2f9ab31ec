"""A step imports only what it needs: the heavy libraries are pinned out of the light paths.

Each test runs the real front end in a child process (as Concourse or a shell would) and asks
that process, after the command, which libraries it loaded. Without a `store` nothing
persists, so a check or get must not even import SQLAlchemy, let alone Alembic; `rich` is for
a terminal, zstandard for zstd layers, RE2 for patterns. `tags` and `digest` ask one question
of a registry: they import no pydantic (a Concourse request, an event or a typed manifest is
none of their business), and a check loads neither `get`'s nor `put`'s machinery. A later
change that imports one of them at module level again fails here instead of quietly costing
every step start-up time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from regwatch.events import TagAppeared
from regwatch.refs import Repository
from regwatch.service.recording import new_event
from regwatch.store.migrate import open_store
from tests import images
from tests.e2e.steps import client_for
from tests.registries import RegistryServer

HEAVY = frozenset({"sqlalchemy", "alembic", "rich", "zstandard", "re2"})
MODELS = frozenset({"pydantic", "pydantic_core", "annotated_types"})
NOT_FOR_CHECK = frozenset(
    {
        "regwatch.service.get",
        "regwatch.service.put",
        "regwatch.image.files",
        "regwatch.image.layout",
        "regwatch.image.loading",
        "regwatch.image.pushes",
        "regwatch.image.tarball",
        "regwatch.image.rootfs",
        "regwatch.service.unpack",
    }
)

PROBE = """\
import json, sys
from regwatch.frontends.cli import main
code = main(sys.argv[2:])
loaded = sorted(sys.modules)
with open(sys.argv[1], "w") as report:
    json.dump({"code": code, "loaded": loaded}, report)
"""


def run_cli(args: list[str], tmp_path: Path, stdin: str = "") -> tuple[str, set[str]]:
    """stdout of `regwatch ARGS`, and the modules its process had loaded, packages and all.

    `sqlalchemy.orm` shows as itself and as `sqlalchemy`, so a set of top-level names can be
    compared with it directly.
    """
    report = tmp_path / f"modules-{uuid.uuid4().hex[:8]}.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(report), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(report.read_text())
    assert found["code"] == 0, done.stderr
    modules = set(found["loaded"])
    return done.stdout, modules | {name.partition(".")[0] for name in modules}


@pytest.fixture(scope="module")
def pushed(plain_registry: RegistryServer) -> tuple[str, images.Image]:
    image = images.image("startup")
    repo = Repository(plain_registry.host, f"startup/{uuid.uuid4().hex[:10]}")
    images.push(client_for(plain_registry), repo, "1.0.0", image)
    images.push(client_for(plain_registry), repo, "stable", image)
    return str(repo), image


def test_digest_imports_no_store_no_terminal_ui_no_codec_and_no_models(
    pushed: tuple[str, images.Image], tmp_path: Path
) -> None:
    repo, image = pushed
    out, loaded = run_cli(["digest", f"{repo}:stable"], tmp_path)
    assert out == f"{image.digest}\n"
    assert loaded & (HEAVY | MODELS) == set()
    assert "regwatch.frontends.concourse" not in loaded


def test_tags_imports_no_store_no_terminal_ui_no_codec_and_no_models(
    pushed: tuple[str, images.Image], tmp_path: Path
) -> None:
    repo, _ = pushed
    out, loaded = run_cli(["tags", repo], tmp_path)
    assert sorted(out.split()) == ["1.0.0", "stable"]
    assert loaded & (HEAVY | MODELS) == set()
    assert "regwatch.frontends.concourse" not in loaded


@pytest.mark.parametrize("mode", [{"tag": "stable"}, {}], ids=["tag mode", "semver mode"])
def test_check_without_a_store_opens_no_database(
    mode: dict[str, Any], pushed: tuple[str, images.Image], tmp_path: Path
) -> None:
    repo, image = pushed
    request = {"source": {"repository": repo, **mode}}
    out, loaded = run_cli(["check"], tmp_path, json.dumps(request))
    tag = mode.get("tag", "1.0.0")
    assert json.loads(out) == [{"tag": tag, "digest": image.digest}]
    assert loaded & HEAVY == set()
    assert loaded & NOT_FOR_CHECK == set()


def test_check_with_a_store_still_records(pushed: tuple[str, images.Image], tmp_path: Path) -> None:
    repo, image = pushed
    database = tmp_path / "store.db"
    request = {"source": {"repository": repo, "tag": "stable", "store": f"sqlite:///{database}"}}
    out, loaded = run_cli(["check"], tmp_path, json.dumps(request))
    assert json.loads(out) == [{"tag": "stable", "digest": image.digest}]
    assert {"sqlalchemy", "alembic"} <= loaded
    assert database.stat().st_size > 0


def test_a_check_answered_from_the_log_loads_no_http_stack_and_no_alembic(
    pushed: tuple[str, images.Image], tmp_path: Path
) -> None:
    """Concourse runs it every minute in a fresh container: it reads one run and a snapshot."""
    repo, image = pushed
    source = {"repository": repo, "tag": "stable", "store": f"sqlite:///{tmp_path / 's.db'}"}
    request = json.dumps({"source": {**source, "max_age": "10m"}})
    first, polled = run_cli(["check"], tmp_path, request)
    assert {"requests", "alembic"} <= polled

    again, loaded = run_cli(["check"], tmp_path, request)

    assert json.loads(again) == json.loads(first) == [{"tag": "stable", "digest": image.digest}]
    assert loaded & {"requests", "urllib3", "alembic", "regwatch.net"} == set()
    assert "sqlalchemy" in loaded


def test_in_without_a_store_records_nothing(
    pushed: tuple[str, images.Image], tmp_path: Path
) -> None:
    repo, image = pushed
    destination = tmp_path / "dest"
    request = {
        "source": {"repository": repo, "tag": "stable"},
        "version": {"tag": "stable", "digest": image.digest},
    }
    out, loaded = run_cli(["in", str(destination)], tmp_path, json.dumps(request))
    assert json.loads(out)["version"] == {"tag": "stable", "digest": image.digest}
    assert (destination / "rootfs" / "etc" / "name").read_bytes() == b"startup"
    assert loaded & {"sqlalchemy", "alembic", "rich"} == set()


def test_history_of_a_sqlite_store_loads_no_database_library_no_http_and_no_models(
    tmp_path: Path,
) -> None:
    """`history` answers in a fraction of a second: the stdlib reads a SQLite file."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    digest = "sha256:" + "a" * 64
    with open_store(url) as store:
        event = TagAppeared(tag="latest", digest=digest)
        store.append("index.docker.io/library/alpine", 0, [new_event(event, datetime.now(UTC))])

    out, loaded = run_cli(["history", "alpine", "--store", url, "--format", "csv"], tmp_path)

    assert out.splitlines()[1].split(",")[1:5] == [
        "appeared",
        "index.docker.io/library/alpine",
        "latest",
        digest,
    ]
    assert loaded & (HEAVY | MODELS | {"requests", "urllib3"}) == set()

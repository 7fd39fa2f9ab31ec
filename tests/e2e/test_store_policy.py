"""The store policy through the real CLI: `regwatch migrate`, and steps on stores to refuse."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from regwatch.refs import Repository
from regwatch.store import migrate
from regwatch.store.engine import create_engine
from regwatch.store.schema import events
from tests import images
from tests.e2e.steps import Run, assert_fails, client_for, source_for, step
from tests.e2e.test_cli import regwatch as command_line
from tests.registries import RegistryServer

HEAD = "0004_leases"
THEN = datetime(2024, 5, 6, tzinfo=UTC)


def regwatch(*arguments: str) -> Run:
    """The command's outcome, with stdout as the `answer` the step assertions read."""
    done = command_line(*arguments)
    return Run(done.code, done.stdout, done.stderr)


def revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        return migrate.current_revision(engine)
    finally:
        engine.dispose()


def seeded(server: RegistryServer) -> tuple[str, str]:
    item = images.image(f"policy-{uuid.uuid4().hex[:8]}")
    repository = Repository(server.host, f"policy/{uuid.uuid4().hex[:10]}")
    images.push(client_for(server), repository, "1.0.0", item)
    return str(repository), item.digest


def test_migrate_creates_then_does_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'trail.db'}"

    first = regwatch("migrate", "--store", url)
    again = regwatch("migrate", "--store", url)

    assert (first.code, first.stderr) == (0, "")
    assert first.answer == f"store {url} migrated from base (empty) to {HEAD}\n"
    assert (again.code, again.stderr) == (0, "")
    assert again.answer == f"store {url} is at schema revision {HEAD} already; nothing to do\n"
    assert revision(url) == HEAD


def test_a_check_on_an_older_store_is_refused_until_it_is_migrated(
    plain_registry: RegistryServer, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'trail.db'}"
    migrate.upgrade(url, "0001")
    repository, digest = seeded(plain_registry)
    request = {"source": source_for(plain_registry, repository, tag="1.0.0", store=url)}

    refused = step("check", request)

    assert_fails(refused, "at schema revision 0001", f"run `regwatch migrate --store {url}`")
    assert revision(url) == "0001"

    migrated = regwatch("migrate", "--store", url)
    assert migrated.code == 0, migrated.stderr
    assert migrated.answer == f"store {url} migrated from 0001 to {HEAD}\n"
    checked = step("check", request)
    assert checked.code == 0, checked.stderr
    assert checked.answer == [{"tag": "1.0.0", "digest": digest}]


def test_a_step_creates_a_new_persistent_store(
    plain_registry: RegistryServer, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'trail.db'}"
    repository, _ = seeded(plain_registry)

    checked = step("check", {"source": source_for(plain_registry, repository, store=url)})

    assert checked.code == 0, checked.stderr
    assert revision(url) == HEAD


def test_a_check_on_a_newer_store_names_the_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'trail.db'}"
    migrate.upgrade(url)
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = '0099_future'"))
    finally:
        engine.dispose()

    refused = step("check", {"source": {"repository": "127.0.0.1:1/x", "store": url}})

    assert_fails(refused, "at schema revision 0099_future, newer than this regwatch knows")
    failed = regwatch("migrate", "--store", url)
    assert failed.code == 1
    assert failed.stderr.count("\n") == 1
    assert "0099_future, newer than this regwatch knows" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_an_event_from_a_newer_regwatch_is_one_clear_line(
    plain_registry: RegistryServer, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'trail.db'}"
    migrate.upgrade(url)
    repository, _ = seeded(plain_registry)
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                events.insert().values(
                    stream=repository,
                    version=1,
                    kind="TagAppeared",
                    schema_version=7,
                    payload={"tag": "1.0.0", "name": "new"},
                    observed_at=THEN,
                    recorded_at=THEN,
                )
            )
    finally:
        engine.dispose()

    refused = step("check", {"source": source_for(plain_registry, repository, store=url)})

    assert_fails(
        refused,
        "TagAppeared at schema version 7, newer than this regwatch knows (its newest is 2)",
        "upgrade regwatch",
    )
    assert "internal error" not in refused.stderr


def test_migrate_hides_the_password_of_an_unreachable_store() -> None:
    failed = regwatch("migrate", "--store", "postgresql+psycopg://u:secret@127.0.0.1:1/x?sslkey=k")

    assert failed.code == 1
    assert failed.answer == ""
    assert failed.stderr.count("\n") == 1
    assert failed.stderr.startswith("regwatch: ")
    assert "u:***@127.0.0.1:1/x?sslkey=***" in failed.stderr
    assert "secret" not in failed.stderr


def test_migrate_an_empty_postgresql_database(postgres_url: str) -> None:
    first = regwatch("migrate", "--store", postgres_url)
    again = regwatch("migrate", "--store", postgres_url)

    assert first.code == 0, first.stderr
    assert "migrated from base (empty)" in first.answer
    assert again.code == 0, again.stderr
    assert "nothing to do" in again.answer

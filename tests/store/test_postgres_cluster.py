"""The PostgreSQL backend of the contract tests is real, and never silently missing under CI."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tests import postgres
from tests.postgres import ExternalPostgres, PostgresCluster


@pytest.fixture
def no_postgres_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(postgres, "DEBIAN_INITDB", str(tmp_path / "*" / "initdb"))


@pytest.mark.usefixtures("no_postgres_installed")
def test_a_missing_postgres_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")

    with pytest.raises(pytest.fail.Exception, match="CI must run the PostgreSQL store tests"):
        postgres.require_postgres()


@pytest.mark.usefixtures("no_postgres_installed")
def test_a_missing_postgres_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)

    with pytest.raises(pytest.skip.Exception, match="Debian package 'postgresql'"):
        postgres.require_postgres()


def test_each_test_gets_an_empty_database(
    postgres_server: PostgresCluster | ExternalPostgres,
) -> None:
    if isinstance(postgres_server, ExternalPostgres):
        pytest.skip("an external server's other connections are not ours to end")
    url = postgres_server.fresh_url()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("CREATE TABLE left_behind (n int)"))
        lingering = engine.connect()  # a test that never let go of its lock
        lingering.execute(sa.text("LOCK TABLE left_behind"))

        assert postgres_server.fresh_url() == url
        lingering.invalidate()  # its server side is gone: nothing to roll back

        with engine.connect() as connection:
            host = connection.execute(sa.text("SELECT inet_server_addr()::text")).scalar_one()
            tables = sa.inspect(connection).get_table_names()
    finally:
        engine.dispose()
    assert host.startswith("127.0.0.1")
    assert tables == []

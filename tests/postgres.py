"""A throw-away PostgreSQL cluster on 127.0.0.1 for the store's contract tests.

SQLite forgives what PostgreSQL does not (types, isolation, locks), so every store contract test
also runs on Debian's PostgreSQL: one cluster per session (`initdb` + `pg_ctl`, about 1.5 s),
its database emptied before each test (a few milliseconds). PostgreSQL refuses to run as
root, so as root the cluster belongs to the `postgres` user. REGWATCH_TEST_POSTGRES_URL points
the tests at an external server instead; that database is emptied before each test.
"""

from __future__ import annotations

import atexit
import glob
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from tests.processes import free_port, log_tail

POSTGRES_ENV = "REGWATCH_TEST_POSTGRES_URL"
CLUSTER_USER = "postgres"
START_ATTEMPTS = 3
# fsync and full-page writes off: commits cost nothing, and a test cluster survives no crash.
_SERVER_OPTIONS = "-c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"

# Where Debian puts the server's tools (not on PATH), newest version last once sorted.
DEBIAN_INITDB = "/usr/lib/postgresql/*/bin/initdb"

# Safety net: clusters still running when the interpreter exits (a crashed session).
_LIVE_CLUSTERS: set[PostgresCluster] = set()


def _fail_or_skip(message: str) -> None:
    """Skip locally, but fail under CI so the PostgreSQL contract never goes untested."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must run the PostgreSQL store tests, not skip them")
    pytest.skip(message)


def require_postgres() -> Path:
    """The directory holding initdb and pg_ctl, once the driver and the server are both here."""
    if importlib.util.find_spec("psycopg") is None:
        _fail_or_skip("psycopg is not installed (pip install -e '.[postgres]')")
    found = shutil.which("initdb")
    candidates = [found] if found else sorted(glob.glob(DEBIAN_INITDB))
    if not candidates:
        _fail_or_skip("PostgreSQL's initdb is not installed (Debian package 'postgresql')")
    bindir = Path(os.path.realpath(candidates[-1])).parent
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(CLUSTER_USER)
        except KeyError:
            _fail_or_skip(f"running as root, without a {CLUSTER_USER!r} user to run PostgreSQL")
    return bindir


@dataclass(eq=False)
class PostgresCluster:
    """A running cluster in ``directory``; ``fresh_url`` empties its database for the next test."""

    bindir: Path
    directory: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{CLUSTER_USER}@127.0.0.1:{self.port}/postgres"

    def fresh_url(self) -> str:
        """The database, as if just created: nobody else connected, no table, type or sequence.

        A new schema, not a new database: CREATE DATABASE copies 8 MB of catalogs each time
        (50 ms idle, 250 ms on a busy machine), dropping a schema costs a few milliseconds.
        """
        engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            with engine.connect() as connection:
                # A previous test's leftover connection could hold a lock the drop waits for.
                connection.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
                connection.execute(sa.text("DROP SCHEMA public CASCADE"))
                connection.execute(sa.text("CREATE SCHEMA public"))
        finally:
            engine.dispose()
        return self.url

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.directory / "log", lines)

    def stop(self) -> None:
        """Stop the server and remove its files; safe to call twice.

        An immediate stop skips the shutdown checkpoint: nothing here outlives the session.
        """
        if self in _LIVE_CLUSTERS:
            _run(self.bindir / "pg_ctl", "-D", self.directory / "data", "-m", "immediate", "stop")
            _LIVE_CLUSTERS.discard(self)
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass(frozen=True)
class ExternalPostgres:
    """A server the developer named; its one database is emptied for every test."""

    url: str

    def fresh_url(self) -> str:
        empty_database(self.url)
        return self.url

    def stop(self) -> None:
        """Nothing to stop: the server is not ours."""


def empty_database(url: str) -> None:
    """Drop every table, so a test starts from (or builds again on) an empty schema."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            existing = sa.MetaData()
            existing.reflect(connection)
            existing.drop_all(connection)
    finally:
        engine.dispose()


def _run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL tool, as the cluster user when we are root (PostgreSQL refuses root)."""
    argv = [str(part) for part in command]
    if os.geteuid() == 0:
        argv = ["runuser", "-u", CLUSTER_USER, "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def start_cluster(bindir: Path) -> PostgresCluster:
    """initdb a new cluster in a fresh directory and start it on a free port (retried on a race)."""
    # Not under pytest's basetemp: that is private to our user, and the server may run as another.
    directory = Path(tempfile.mkdtemp(prefix="regwatch-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, CLUSTER_USER)
    data = directory / "data"
    made = _run(
        bindir / "initdb", "-D", data, "-A", "trust", "-U", CLUSTER_USER, "-N", "--no-instructions"
    )
    if made.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.fail(f"initdb failed: {made.stderr.strip()}")
    for _ in range(START_ATTEMPTS):
        cluster = PostgresCluster(bindir, directory, free_port())
        options = f"-p {cluster.port} -k {directory} {_SERVER_OPTIONS}"
        started = _run(
            bindir / "pg_ctl", "-D", data, "-l", directory / "log", "-w", "-o", options, "start"
        )
        if started.returncode == 0:
            _LIVE_CLUSTERS.add(cluster)
            return cluster
    log = cluster.log_tail()
    shutil.rmtree(directory, ignore_errors=True)
    pytest.fail(f"PostgreSQL did not start: {started.stdout.strip()}\n{log}")


def start_postgres() -> PostgresCluster | ExternalPostgres:
    """The server for this session: the developer's when named, else a cluster of our own."""
    external = os.environ.get(POSTGRES_ENV)
    if external:
        if importlib.util.find_spec("psycopg") is None:
            _fail_or_skip("psycopg is not installed (pip install -e '.[postgres]')")
        return ExternalPostgres(external)
    return start_cluster(require_postgres())


@atexit.register
def _stop_leftovers() -> None:
    """Never leave a cluster behind, even when the session dies before fixture teardown."""
    for cluster in list(_LIVE_CLUSTERS):
        cluster.stop()

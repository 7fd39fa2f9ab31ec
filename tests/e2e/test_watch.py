"""`regwatch watch` and `regwatch status` as users run them: a config file, a subprocess, a real
registry that changes between polls, signals, and the store read back afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from regwatch.refs import Repository
from tests import images
from tests.e2e.steps import Daemon, client_for, regwatch_command
from tests.faults import FaultRegistry, Reply, json_reply, rate_limited, tags_path
from tests.processes import free_port
from tests.registries import RegistryServer


def write_config(path: Path, store: Path, watches: list[dict[str, Any]], **extra: Any) -> Path:
    path.write_text(yaml.safe_dump({"store": f"sqlite:///{store}", "watches": watches, **extra}))
    return path


def regwatch(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*regwatch_command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=dict(os.environ),
    )


def rows(database: Path) -> list[tuple[str, int, str, dict[str, Any]]]:
    """(stream, version, kind, payload) of every event, in position order; none while the
    daemon has not created the store yet."""
    with sqlite3.connect(database) as db:
        try:
            found = db.execute(
                "SELECT stream, version, kind, payload FROM events ORDER BY position"
            ).fetchall()
        except sqlite3.OperationalError:  # no table yet
            return []
        return [(s, v, k, json.loads(p)) for s, v, k, p in found]


def app_config(tmp_path: Path, repository: Repository, every: str) -> tuple[Path, Path]:
    """A config of one watch `app` on `repository`, and the SQLite store it names."""
    store = tmp_path / "trail.db"
    watches = [{"name": "app", "source": {"repository": str(repository)}, "every": every}]
    return write_config(tmp_path / "config.yaml", store, watches), store


def status(config: Path) -> list[dict[str, Any]]:
    done = regwatch("status", "--config", str(config), "--format", "json")
    assert done.returncode == 0, done.stderr
    watches: list[dict[str, Any]] = json.loads(done.stdout)["watches"]
    return watches


@pytest.fixture
def repository(plain_registry: RegistryServer) -> Repository:
    return Repository(plain_registry.host, f"watch/{uuid.uuid4().hex[:10]}")


def push(server: RegistryServer, repository: Repository, tag: str, name: str) -> str:
    item = images.image(name)
    images.push(client_for(server), repository, tag, item)
    return item.digest


def wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def test_once_polls_every_watch_records_and_status_shows_it(
    plain_registry: RegistryServer, repository: Repository, tmp_path: Path
) -> None:
    one = push(plain_registry, repository, "1.0.0", "one")
    push(plain_registry, repository, "latest", "one")
    store = tmp_path / "trail.db"
    config = write_config(
        tmp_path / "config.yaml",
        store,
        [
            {"name": "app", "source": {"repository": str(repository)}, "every": "1h"},
            {
                "name": "pinned",
                "source": {"repository": str(repository), "tag": "1.0.0"},
                "every": "1h",
            },
        ],
    )

    done = regwatch("watch", "--config", str(config), "--once")

    assert done.returncode == 0, done.stderr
    tags = {(p["tag"], p["digest"]) for s, _, k, p in rows(store) if k == "TagAppeared"}
    assert ("1.0.0", one) in tags
    runs = [p for s, _, k, p in rows(store) if k == "PollSucceeded"]
    assert len(runs) == 2
    assert {run["source"] for run in runs} == {"watch"}
    assert all(run["daemon"] for run in runs)
    shown = status(config)
    assert [w["name"] for w in shown] == ["app", "pinned"]
    assert {w["outcome"] for w in shown} == {"ok"}
    assert shown[0]["repository"] == repository.name
    assert shown[0]["tags_known"] >= 1
    assert shown[0]["error"] is None
    assert shown[0]["last_poll"].endswith("Z")
    assert shown[0]["next_due"] is not None
    table = regwatch("status", "--config", str(config))
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split()[:2] == ["NAME", "REPOSITORY"]


def test_once_exits_1_when_a_poll_failed_and_records_the_failure(
    plain_registry: RegistryServer, repository: Repository, tmp_path: Path
) -> None:
    push(plain_registry, repository, "1.0.0", "one")
    store = tmp_path / "trail.db"
    down = f"127.0.0.1:{free_port()}/nobody/home"
    config = write_config(
        tmp_path / "config.yaml",
        store,
        [
            {"name": "healthy", "source": {"repository": str(repository)}, "every": "1h"},
            {"name": "down", "source": {"repository": down}, "every": "1h"},
        ],
    )

    done = regwatch("watch", "-c", str(config), "--once")

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    failures = [line for line in done.stderr.splitlines() if "watch down:" in line]
    assert len(failures) == 1, done.stderr
    by_name = {w["name"]: w for w in status(config)}
    assert by_name["healthy"]["outcome"] == "ok"
    assert by_name["down"]["outcome"] == "failed"
    assert by_name["down"]["error"].startswith(f"polling {down} failed")


def test_status_of_a_store_that_does_not_exist_creates_nothing(
    repository: Repository, tmp_path: Path
) -> None:
    store = tmp_path / "not-yet.db"
    config = write_config(
        tmp_path / "config.yaml",
        store,
        [{"source": {"repository": str(repository)}, "every": "5m"}],
    )

    shown = status(config)

    assert [(w["name"], w["outcome"], w["last_poll"]) for w in shown] == [
        (str(repository), "never", None)
    ]
    assert not store.exists()


def test_the_daemon_polls_on_schedule_sees_changes_serves_metrics_and_stops_on_sigterm(
    plain_registry: RegistryServer,
    repository: Repository,
    tmp_path: Path,
    daemons: list[Daemon],
) -> None:
    push(plain_registry, repository, "1.0.0", "one")
    port = free_port()
    config, store = app_config(tmp_path, repository, "1s")
    daemon = Daemon(config, "--listen", f"127.0.0.1:{port}")
    daemons.append(daemon)

    def appeared() -> set[str]:
        return {p["tag"] for s, _, k, p in rows(store) if k == "TagAppeared"}

    wait_for(lambda: "1.0.0" in appeared())
    newer = push(plain_registry, repository, "1.1.0", "two")
    wait_for(lambda: "1.1.0" in appeared())
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as health:
        assert health.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        metrics = answer.read().decode()
    assert 'regwatch_polls_total{result="ok",watch="app"}' in metrics
    assert f':{daemon.process.pid}",result="ok"}}' in metrics, "polls by this daemon (host:pid)"
    assert 'regwatch_events_appended_total{kind="TagAppeared"}' in metrics
    assert f'regwatch_registry_requests_total{{code="200",registry="{plain_registry.host}"}}' in (
        metrics
    )
    assert "regwatch_build_info{" in metrics
    assert "1.1.0" not in metrics, "no tag is ever a label"

    assert daemon.stop(signal.SIGTERM) == 0
    assert "Traceback" not in daemon.output()
    moved = [(p["tag"], p["digest"]) for s, _, k, p in rows(store) if k == "TagAppeared"]
    assert ("1.1.0", newer) in moved


def test_a_restart_does_not_poll_a_watch_polled_within_its_interval(
    plain_registry: RegistryServer,
    repository: Repository,
    tmp_path: Path,
    daemons: list[Daemon],
) -> None:
    push(plain_registry, repository, "1.0.0", "one")
    config, store = app_config(tmp_path, repository, "1h")
    assert regwatch("watch", "--config", str(config), "--once").returncode == 0

    def polls() -> int:
        return sum(1 for s, _, k, _ in rows(store) if k == "PollSucceeded")

    daemon = Daemon(config)
    daemons.append(daemon)
    wait_for(lambda: "watching 1 watch(es)" in daemon.output())
    time.sleep(1.5)

    assert polls() == 1, "polled an hour ago: its next turn is an hour later"
    assert daemon.stop(signal.SIGINT) == 0


def started(daemon: Daemon) -> bool:
    return "watching 3 watch(es)" in daemon.output()


def test_sigkill_during_polls_never_leaves_a_half_poll(
    plain_registry: RegistryServer,
    repository: Repository,
    tmp_path: Path,
) -> None:
    for index in range(30):
        push(plain_registry, repository, f"1.{index}.0", f"v{index}")
    store = tmp_path / "trail.db"
    config = write_config(
        tmp_path / "config.yaml",
        store,
        [
            {"name": f"w{n}", "source": {"repository": str(repository)}, "every": "1s"}
            for n in range(3)
        ],
    )
    for round_number in range(12):  # every kill delay below once, and then some
        daemon = Daemon(config)
        if round_number:  # the first dies wherever start-up is (creating the schema, perhaps)
            wait_for(partial(started, daemon))
        time.sleep(0.05 * (round_number % 9))
        daemon.process.kill()
        daemon.process.wait(10)

    found = rows(store)
    by_stream: dict[str, list[int]] = {}
    for stream, version, _, _ in found:
        by_stream.setdefault(stream, []).append(version)
    for stream, versions in by_stream.items():
        assert versions == list(range(1, len(versions) + 1)), stream
    appeared = [p["tag"] for s, _, k, p in found if k == "TagAppeared"]
    assert len(appeared) == len(set(appeared)), "each tag recorded once"
    done = regwatch("watch", "--config", str(config), "--once")
    assert done.returncode == 0, done.stderr
    assert {p["tag"] for s, _, k, p in rows(store) if k == "TagAppeared"} == {
        f"1.{index}.0" for index in range(30)
    }


def test_a_bad_config_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    store = tmp_path / "trail.db"
    config = write_config(
        tmp_path / "config.yaml",
        store,
        [{"source": {"repository": "alpine", "nonsense_key": 1}, "every": "5m"}],
    )

    done = regwatch("watch", "--config", str(config), "--once")

    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "watches[0].source.nonsense_key" in done.stderr
    assert not store.exists()


def test_a_rate_limited_and_a_down_registry_do_not_hold_up_a_healthy_watch(
    plain_registry: RegistryServer,
    repository: Repository,
    tmp_path: Path,
    daemons: list[Daemon],
) -> None:
    push(plain_registry, repository, "1.0.0", "one")
    store = tmp_path / "trail.db"
    with FaultRegistry() as limited:
        limited.route("GET", "/v2/", json_reply({}))
        limited.route("GET", tags_path("limited/app"), rate_limited("60"))
        config = write_config(
            tmp_path / "config.yaml",
            store,
            [
                {"name": "healthy", "source": {"repository": str(repository)}, "every": "1s"},
                {
                    "name": "limited",
                    "source": {"repository": f"{limited.host}/limited/app"},
                    "every": "1s",
                },
                {
                    "name": "down",
                    "source": {"repository": f"127.0.0.1:{free_port()}/x/y"},
                    "every": "1s",
                },
            ],
            workers=2,
        )
        daemon = Daemon(config)
        daemons.append(daemon)

        def healthy_polls() -> int:
            return sum(
                1
                for s, _, k, _ in rows(store)
                if s == f"{repository.name}#runs" and k == "PollSucceeded"
            )

        wait_for(lambda: healthy_polls() >= 4)

        assert limited.count("GET", tags_path("limited/app")) == 1, "paused after one 429"
        assert daemon.stop(signal.SIGTERM) == 0
    failures = [
        p["error"]
        for s, _, k, p in rows(store)
        if k == "PollFailed" and s == f"{limited.host}/limited/app#runs"
    ]
    assert "429 too many requests" in failures[0]
    assert all("is rate-limited: paused until" in error for error in failures[1:])


def test_sigterm_lets_the_poll_in_flight_finish_and_exits_0(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    store = tmp_path / "trail.db"
    slow_body = json.dumps({"name": "slow/app", "tags": ["1.0.0"]}).encode()
    with FaultRegistry() as slow:
        slow.route("GET", "/v2/", json_reply({}))
        slow.route(
            "GET",
            tags_path("slow/app"),
            Reply(
                200, slow_body, {"Content-Type": "application/json"}, trickle=0.05, trickle_bytes=1
            ),
        )
        config = write_config(
            tmp_path / "config.yaml",
            store,
            [{"name": "slow", "source": {"repository": f"{slow.host}/slow/app"}, "every": "1h"}],
        )
        daemon = Daemon(config)
        daemons.append(daemon)
        wait_for(lambda: slow.count("GET", tags_path("slow/app")) >= 1)

        started = time.monotonic()
        assert daemon.stop(signal.SIGTERM) == 0

    assert time.monotonic() - started < 25
    assert "stopping" in daemon.output()
    kinds = [k for s, _, k, _ in rows(store) if s == f"{slow.host}/slow/app#runs"]
    assert kinds == ["PollSucceeded"], "the poll in flight finished and was recorded"


def test_without_a_store_the_log_is_made_under_the_state_directory(
    plain_registry: RegistryServer,
    repository: Repository,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    push(plain_registry, repository, "1.0.0", "one")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"watches": [{"source": {"repository": str(repository)}, "every": "1h"}]})
    )

    done = regwatch("watch", "--config", str(config), "--once")

    assert done.returncode == 0, done.stderr
    made = tmp_path / "state" / "regwatch" / "regwatch.db"
    assert "1.0.0" in {p.get("tag") for s, _, k, p in rows(made) if k == "TagAppeared"}
    assert status(config)[0]["outcome"] == "ok"


def skopeo(*args: str) -> None:
    done = subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr


def test_retags_and_deletes_made_with_skopeo_between_polls_are_recorded(
    plain_registry: RegistryServer, repository: Repository, tmp_path: Path
) -> None:
    old = push(plain_registry, repository, "1.0.0", "old")
    new = push(plain_registry, repository, "1.1.0", "new")
    push(plain_registry, repository, "latest", "old")
    config, store = app_config(tmp_path, repository, "1h")
    assert regwatch("watch", "-c", str(config), "--once").returncode == 0

    at = f"docker://{repository}"
    skopeo(
        "copy", "--src-tls-verify=false", "--dest-tls-verify=false", f"{at}:1.1.0", f"{at}:latest"
    )
    skopeo("delete", "--tls-verify=false", f"{at}@{old}")
    done = regwatch("watch", "-c", str(config), "--once")

    assert done.returncode == 0, done.stderr
    changes = [(k, p) for s, _, k, p in rows(store) if s == repository.name][3:]
    moved = {"tag": "latest", "old_digest": old, "new_digest": new, "platform": None}
    assert ("TagMoved", {**moved, "platform_changed": None}) in changes
    assert ("TagDisappeared", {"tag": "1.0.0", "digest": old, "platform": None}) in changes
    # the move's new manifest is described for the history; the old one is gone (no fact)
    assert [p["digest"] for k, p in changes if k == "ImageInspected"] == [new]
    assert len(changes) == 3

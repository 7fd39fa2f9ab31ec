"""Notifications as users get them: `regwatch watch` with sinks, a real registry changed with
skopeo between polls, and receivers this test starts (a tiny HTTP server, a command, Apprise).

What is checked is what a receiver can see: CloudEvents fields and the HMAC, one summary for a
watch's first poll and then one event per change, filters, nothing lost while a receiver is
down and no duplicate in a clean run, and the same id again after a crash before a checkpoint.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from regwatch.refs import Repository
from tests import images
from tests.e2e.steps import regwatch_command
from tests.e2e.test_watch import regwatch
from tests.processes import free_port
from tests.registries import RegistryServer, require_tool, start_plain_registry

SECRET = "hmac-secret-for-tests"


# --- the receiver -----------------------------------------------------------------------------


class Receiver:
    """An HTTP sink: records every POST (path, headers, body); down, up, or holding answers."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.hold = threading.Event()
        """Set: a request is recorded, then its answer waits until `release` is set."""
        self.release = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.received.append((self.path, dict(self.headers.items()), body))
                if receiver.hold.is_set():
                    receiver.release.wait(60)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def events(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(body) for p, _, body in self.received if p == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.release.set()
    started.stop()


# --- the registry and the daemon --------------------------------------------------------------


class Pusher:
    """Pushes, re-pushes and deletes tags with skopeo, as a user would."""

    def __init__(self, server: RegistryServer, workdir: Path) -> None:
        self.server = server
        self.workdir = workdir

    def push(self, repository: Repository, tag: str, content: str) -> str:
        item = images.image(content)
        layout = self.workdir / f"layout-{uuid.uuid4().hex[:8]}"
        images.write_oci_layout(layout, tag, item)
        images.skopeo_copy(layout, tag, self.server, repository.path, "--format", "v2s2")
        return images.skopeo_digest(self.server, f"{repository.path}:{tag}", self.workdir)

    def delete(self, repository: Repository, tag: str) -> None:
        subprocess.run(
            [
                require_tool("skopeo"),
                "delete",
                "--tls-verify=false",
                f"docker://{self.server.host}/{repository.path}:{tag}",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )


@pytest.fixture
def pusher(plain_registry: RegistryServer, tmp_path: Path) -> Pusher:
    workdir = tmp_path / "skopeo"
    workdir.mkdir()
    return Pusher(plain_registry, workdir)


def new_repository(server: RegistryServer) -> Repository:
    return Repository(server.host, f"notify/{uuid.uuid4().hex[:10]}")


def write_config(
    tmp_path: Path, watches: list[dict[str, Any]], notify: list[dict[str, Any]]
) -> Path:
    path = tmp_path / "config.yaml"
    store = f"sqlite:///{tmp_path / 'trail.db'}"
    path.write_text(yaml.safe_dump({"store": store, "watches": watches, "notify": notify}))
    return path


def watch(name: str, repository: Repository) -> dict[str, Any]:
    return {"name": name, "source": {"repository": str(repository)}, "every": "1h", "rescan": "1s"}


def once(config: Path) -> subprocess.CompletedProcess[str]:
    done = regwatch("watch", "--config", str(config), "--once")
    assert "Traceback" not in done.stderr
    return done


def wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"].rpartition(".")[2], e["subject"]) for e in events]


def position(event: dict[str, Any]) -> int:
    return int(event["id"].removeprefix("regwatch-"))


# --- the tests --------------------------------------------------------------------------------


def test_sinks_get_one_summary_then_one_event_per_change_filtered_signed_and_in_order(
    plain_registry: RegistryServer, pusher: Pusher, receiver: Receiver, tmp_path: Path
) -> None:
    app, other = new_repository(plain_registry), new_repository(plain_registry)
    first = pusher.push(app, "1.0.0", "one")
    pusher.push(app, "latest", "one")
    pusher.push(other, "x", "other")
    commands = tmp_path / "commands.jsonl"
    script = tmp_path / "record.py"
    script.write_text(
        "import json, os, sys\n"
        "event = json.load(sys.stdin)\n"
        "env = {k: v for k, v in os.environ.items() if k.startswith('REGWATCH_')}\n"
        "with open(sys.argv[1], 'a') as out:\n"
        "    out.write(json.dumps({'env': env, 'event': event}) + '\\n')\n"
    )
    config = write_config(
        tmp_path,
        [watch("app", app), watch("other", other)],
        [
            {
                "name": "hook",
                "webhook": {
                    "url": receiver.url("/hook"),
                    "secret": SECRET,
                    "headers": {"X-Team": "core"},
                },
            },
            {
                "name": "moves",
                "kinds": ["repush", "rollback"],
                "webhook": {"url": receiver.url("/moves")},
            },
            {"name": "others", "watches": ["other"], "webhook": {"url": receiver.url("/other")}},
            {"announce_initial": False, "slack": {"url": receiver.url("/slack")}},
            {"command": {"argv": [sys.executable, str(script), str(commands)]}},
            {"apprise": {"url": f"json://127.0.0.1:{receiver.port}/apprise"}},
        ],
    )

    done = once(config)

    assert done.returncode == 0, done.stderr
    hook = receiver.events("/hook")
    assert sorted(kinds(hook)) == [("initial", "app"), ("initial", "other")]
    initial = next(e for e in hook if e["subject"] == "app")
    assert initial["data"] == {"watch": "app", "repository": app.name, "tags": 2}
    assert initial["source"] == f"regwatch://{app.name}"
    assert initial["type"] == "io.regwatch.watch.initial"
    assert kinds(receiver.events("/other")) == [("initial", "other")]
    assert receiver.events("/moves") == []
    assert receiver.events("/slack") == [], "announce_initial: false"

    second = pusher.push(app, "latest", "two")
    pusher.push(app, "1.1.0", "two")
    assert once(config).returncode == 0

    changes = receiver.events("/hook")[2:]
    assert sorted(kinds(changes)) == [("appeared", "1.1.0"), ("moved", "latest")]
    moved = next(e for e in changes if e["subject"] == "latest")
    assert moved["specversion"] == "1.0"
    assert moved["type"] == "io.regwatch.tag.moved"
    assert moved["source"] == f"regwatch://{app.name}"
    assert moved["time"].endswith("Z")
    assert moved["data"]["previous_digest"] == first
    assert moved["data"]["digest"] == second
    assert list(moved["data"]) == [
        "time",
        "kind",
        "repository",
        "tag",
        "digest",
        "previous_digest",
        "repush",
        "rollback",
        "platforms_added",
        "platforms_removed",
        "platform_changed",
    ]
    assert (moved["data"]["repush"], moved["data"]["rollback"]) == (False, False)
    assert receiver.events("/other")[1:] == [], "another watch's repository"

    pusher.push(app, "1.0.0", "re-pushed")
    pusher.push(app, "latest", "one")
    assert once(config).returncode == 0
    pusher.delete(app, "1.1.0")
    assert once(config).returncode == 0

    hook = receiver.events("/hook")
    later = hook[4:]
    assert sorted(kinds(later)) == [
        ("disappeared", "1.1.0"),
        ("moved", "1.0.0"),
        ("moved", "latest"),
    ]
    flagged = {e["subject"]: (e["data"]["repush"], e["data"]["rollback"]) for e in later}
    assert flagged == {"1.0.0": (True, False), "latest": (False, True), "1.1.0": (False, False)}
    assert kinds(receiver.events("/moves")) == kinds(later[:2])
    ids = [position(e) for e in hook]
    assert ids == sorted(set(ids)), "log order, each event once"
    for path, headers, body in receiver.received:
        if path == "/hook":
            assert headers["Content-Type"] == "application/cloudevents+json"
            assert headers["X-Team"] == "core"
            expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert headers["X-Regwatch-Signature-256"] == f"sha256={expected}"
    slack = [json.loads(body)["text"] for p, _, body in receiver.received if p == "/slack"]
    assert len(slack) == 5
    assert all(text.startswith("regwatch: ") and "\n" not in text for text in slack)
    assert any(f"{app.name}:1.0.0 moved" in text and "repush" in text for text in slack)
    ran = [json.loads(line) for line in commands.read_text().splitlines()]
    assert [r["env"]["REGWATCH_KIND"] for r in ran][:2] == ["initial", "initial"]
    assert sorted(r["env"]["REGWATCH_KIND"] for r in ran[2:]) == [
        "appeared",
        "disappeared",
        "moved",
        "repush",
        "rollback",
    ]
    rolled = next(r for r in ran if r["env"]["REGWATCH_KIND"] == "rollback")
    assert rolled["env"]["REGWATCH_REPOSITORY"] == app.name
    assert rolled["env"]["REGWATCH_TAG"] == "latest"
    assert rolled["env"]["REGWATCH_DIGEST"] == first
    assert rolled["env"]["REGWATCH_PREVIOUS_DIGEST"] == second
    assert rolled["event"]["subject"] == "latest"
    assert [r["event"]["id"] for r in ran] == [e["id"] for e in hook]
    apprised = [json.loads(body) for p, _, body in receiver.received if p == "/apprise"]
    assert len(apprised) == 7
    assert all(json.loads(a["message"])["event"]["specversion"] == "1.0" for a in apprised)
    assert SECRET not in done.stderr


def test_a_sink_down_for_three_polls_gets_everything_once_in_order_when_back(
    plain_registry: RegistryServer, pusher: Pusher, tmp_path: Path
) -> None:
    app = new_repository(plain_registry)
    pusher.push(app, "latest", "v0")
    receiver = Receiver()  # not started: down
    secret_url = f"http://alice:{SECRET}@127.0.0.1:{receiver.port}/"
    config = write_config(
        tmp_path, [watch("app", app)], [{"name": "hook", "webhook": {"url": secret_url}}]
    )

    for number in range(1, 4):
        done = once(config)
        assert done.returncode == 0, "sinks never change the exit status"
        warnings = [line for line in done.stderr.splitlines() if "sink hook" in line]
        assert any("stays pending" in line for line in warnings), done.stderr
        assert SECRET not in done.stderr
        pusher.push(app, "latest", f"v{number}")
    receiver.start()
    try:
        assert once(config).returncode == 0
        assert once(config).returncode == 0
    finally:
        receiver.stop()

    events = receiver.events("/")
    assert kinds(events) == [("initial", "app")] + [("moved", "latest")] * 3
    basic = "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
    assert {headers["Authorization"] for _, headers, _ in receiver.received} == {basic}
    ids = [position(e) for e in events]
    assert ids == sorted(set(ids)), "in log order, none twice"


def test_a_daemon_killed_before_its_checkpoint_delivers_again_with_the_same_id(
    plain_registry: RegistryServer, pusher: Pusher, receiver: Receiver, tmp_path: Path
) -> None:
    app = new_repository(plain_registry)
    pusher.push(app, "latest", "v0")
    config = write_config(
        tmp_path, [watch("app", app)], [{"name": "hook", "webhook": {"url": receiver.url("/")}}]
    )
    port = free_port()
    receiver.hold.set()
    log = (tmp_path / "daemon.log").open("w")
    command = [*regwatch_command(), "watch", "--config", str(config)]
    daemon = subprocess.Popen(
        [*command, "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for(lambda: len(receiver.received) == 1)
        daemon.send_signal(signal.SIGKILL)  # the receiver read it, but has not answered yet
        daemon.wait(10)
        receiver.hold.clear()
        receiver.release.set()
        daemon = subprocess.Popen(
            [*command, "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT
        )
        wait_for(lambda: len(receiver.received) == 2)
        first, again = receiver.events("/")
        assert again == first
        assert first["type"] == "io.regwatch.watch.initial"

        def metrics() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
                return str(answer.read().decode())

        wait_for(lambda: 'regwatch_deliveries_total{result="ok",sink="hook"} 1.0' in metrics())
        shown = metrics()
        assert 'regwatch_deliveries_total{result="failed",sink="hook"} 0.0' in shown
        assert 'regwatch_follower_lag_events{sink="hook"} 0.0' in shown
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(40) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
        log.close()
    assert "Traceback" not in (tmp_path / "daemon.log").read_text()
    assert len(receiver.received) == 2, "nothing more after the checkpoint"


def test_poll_failed_is_sent_once_when_a_watch_starts_failing(
    pusher: Pusher, receiver: Receiver, tmp_path: Path
) -> None:
    (tmp_path / "registry").mkdir()
    own = start_plain_registry(require_tool("docker-registry"), tmp_path / "registry")
    try:
        app = new_repository(own)
        Pusher(own, pusher.workdir).push(app, "latest", "v0")
        nowhere = Repository(f"127.0.0.1:{free_port()}", "nobody/home")
        config = write_config(
            tmp_path,
            [watch("app", app), watch("down", nowhere)],
            [{"name": "hook", "kinds": ["failed"], "webhook": {"url": receiver.url("/")}}],
        )
        assert once(config).returncode == 1
    finally:
        own.stop()
    assert once(config).returncode == 1
    assert once(config).returncode == 1

    events = receiver.events("/")
    assert sorted(kinds(events)) == [("failed", "app"), ("failed", "down")]
    down = next(e for e in events if e["subject"] == "down")
    assert down["type"] == "io.regwatch.poll.failed"
    assert down["data"]["watch"] == "down"
    assert down["data"]["repository"] == nowhere.name
    assert down["data"]["error"].startswith(f"polling {nowhere} failed")


def test_sigterm_stops_a_daemon_whose_sink_is_down_at_once(
    plain_registry: RegistryServer, pusher: Pusher, tmp_path: Path
) -> None:
    app = new_repository(plain_registry)
    pusher.push(app, "latest", "v0")
    down = Receiver()  # never started
    config = write_config(
        tmp_path, [watch("app", app)], [{"name": "hook", "webhook": {"url": down.url("/")}}]
    )
    log = tmp_path / "daemon.log"
    with log.open("w") as out:
        daemon = subprocess.Popen(
            [*regwatch_command(), "watch", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "notify: sink hook: deliver to sink hook" in log.read_text())
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(20) == 0
        assert time.monotonic() - started < 5, "a sink backing off holds nothing up"
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
    output = log.read_text()
    assert "Traceback" not in output
    warnings = [line for line in output.splitlines() if "sink hook" in line]
    assert len(warnings) == 1, "one line when a sink starts failing, not one per retry"

"""How a command ends when its surroundings end it: a closed or full stdout, and Ctrl-C.

Real subprocesses throughout: a closed pipe ends quietly, a full device is one error line, and
SIGINT sent to a step blocked on a silent server (the fault registry's `Stall`) ends it with
`interrupted`, exit 130, within seconds, leaving nothing in DEST. Never a traceback, never an
"Exception ignored" at interpreter shutdown.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import pytest

from regwatch.frontends.interrupt import GRACE
from regwatch.refs import Repository
from tests import images
from tests.e2e.steps import client_for, regwatch_command
from tests.faults import (
    DOCKER_MANIFEST,
    FaultRegistry,
    Stall,
    blob_path,
    blob_reply,
    manifest_path,
    manifest_reply,
)
from tests.registries import RegistryServer


def command(*args: str) -> list[str]:
    return [*regwatch_command(), *args]


def seeded(server: RegistryServer, tags: Sequence[str] = ("latest",)) -> tuple[str, str]:
    """A fresh repository holding one image under `tags`; (repository, digest)."""
    item = images.image(f"endings-{uuid.uuid4().hex[:8]}")
    repo = Repository(server.host, f"endings/{uuid.uuid4().hex[:10]}")
    client = client_for(server)
    first, *others = tags
    images.push(client, repo, first, item)
    with ThreadPoolExecutor(4) as pool:  # the other tags need only their manifest PUT
        for tagged in pool.map(lambda tag: images.tag_manifest(client, repo, tag, item), others):
            assert tagged == item.digest
    return str(repo), item.digest


def run_into(args: list[str], stdout: IO[Any] | int, stdin: str = "") -> tuple[int, str]:
    done = subprocess.run(
        args,
        input=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stderr


def assert_clean_stderr(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert "Exception ignored" not in stderr
    assert "BrokenPipeError" not in stderr


def _closed_pipe_run(args: list[str], stdin: str) -> tuple[int, str]:
    """Run with stdout a pipe whose reader is already gone."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return run_into(args, writer, stdin)
    finally:
        os.close(writer)


def test_check_answer_to_a_closed_pipe_ends_quietly(plain_registry: RegistryServer) -> None:
    repo, _ = seeded(plain_registry)
    request = json.dumps({"source": {"repository": repo, "tag": "latest"}})
    code, stderr = _closed_pipe_run(command("check"), request)
    assert code in (0, -signal.SIGPIPE), stderr
    assert_clean_stderr(stderr)
    assert "error" not in stderr


@pytest.mark.parametrize("what", ["tags", "digest"])
def test_tags_and_digest_to_a_closed_pipe_end_quietly(
    plain_registry: RegistryServer, what: str
) -> None:
    repo, _ = seeded(plain_registry)
    code, stderr = _closed_pipe_run(command(what, repo if what == "tags" else f"{repo}:latest"), "")
    assert (code, stderr) in ((0, ""), (-signal.SIGPIPE, ""))


def test_check_piped_into_head_c_0(plain_registry: RegistryServer) -> None:
    repo, _ = seeded(plain_registry)
    request = json.dumps({"source": {"repository": repo, "tag": "latest"}})
    script = " ".join(command("check"))
    done = subprocess.run(
        ["bash", "-c", f"{script} | head -c 0; echo ${{PIPESTATUS[0]}} >&2"],
        input=request,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout == ""
    assert_clean_stderr(done.stderr)
    assert done.stderr.strip() in ("0", str(128 + signal.SIGPIPE)), done.stderr


def test_tags_piped_into_head_1(plain_registry: RegistryServer) -> None:
    """More than a pipe buffer of tags, so the writer really meets the closed pipe."""
    tags = [f"{n:04d}-{'t' * 110}" for n in range(650)]
    repo, _ = seeded(plain_registry, tags)
    script = " ".join(command("tags", repo))
    done = subprocess.run(
        ["bash", "-c", f"{script} | head -1; echo ${{PIPESTATUS[0]}} >&2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert len(done.stdout.splitlines()) == 1
    assert done.stdout.strip() in tags
    assert_clean_stderr(done.stderr)
    assert done.stderr.strip() in ("0", str(128 + signal.SIGPIPE)), done.stderr


@pytest.mark.parametrize("what", ["check", "tags", "digest"])
def test_a_full_device_is_one_error_line(plain_registry: RegistryServer, what: str) -> None:
    repo, _ = seeded(plain_registry)
    args = {
        "check": command("check"),
        "tags": command("tags", repo),
        "digest": command("digest", f"{repo}:latest"),
    }[what]
    request = json.dumps({"source": {"repository": repo, "tag": "latest"}})
    with open("/dev/full", "w") as full:
        code, stderr = run_into(args, full, request if what == "check" else "")
    prefix = "error: " if what == "check" else "regwatch: "
    assert code == 1
    assert stderr.splitlines() == [f"{prefix}cannot write to stdout: no space left on device"]


# -- Ctrl-C -----------------------------------------------------------------------------------


def interrupted(
    args: list[str], stdin: str, blocked: Callable[[], bool], env: dict[str, str] | None = None
) -> tuple[int, str, float]:
    """Start the command, wait until `blocked()`, send SIGINT; (status, stderr, seconds)."""
    process = subprocess.Popen(
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert process.stdin is not None
    process.stdin.write(stdin)
    process.stdin.close()
    try:
        deadline = time.monotonic() + 60
        while not blocked():
            assert process.poll() is None, "the command ended before it was interrupted"
            assert time.monotonic() < deadline, "the command never reached the silent server"
            time.sleep(0.05)
        time.sleep(0.2)
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=GRACE + 30)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stdout is not None
    assert process.stderr is not None
    with process.stdout, process.stderr:
        out, err = process.stdout.read(), process.stderr.read()
    assert out == ""
    return process.returncode, err, took


def assert_interrupted(status: int, stderr: str, took: float, prefix: str = "error: ") -> None:
    assert status == 130, stderr
    assert_clean_stderr(stderr)
    assert "KeyboardInterrupt" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith(prefix)]
    assert errors == [f"{prefix}interrupted"], stderr
    assert took < GRACE + 10


@pytest.fixture
def silent() -> Any:
    """A registry that accepts connections and never answers `/v2/`."""
    with FaultRegistry() as fault:
        fault.route("GET", "/v2/", Stall())
        yield fault


@pytest.mark.parametrize("store", [False, True])
def test_ctrl_c_in_check(silent: FaultRegistry, tmp_path: Path, store: bool) -> None:
    source: dict[str, Any] = {"repository": f"{silent.host}/app", "tag": "latest"}
    if store:
        source["store"] = f"sqlite:///{tmp_path / 'trail.db'}"
    status, stderr, took = interrupted(
        command("check"),
        json.dumps({"source": source}),
        lambda: silent.count("GET", "/v2/") > 0,
    )
    assert_interrupted(status, stderr, took)


def test_ctrl_c_in_tags(silent: FaultRegistry) -> None:
    status, stderr, took = interrupted(
        command("tags", f"{silent.host}/app"), "", lambda: silent.count("GET", "/v2/") > 0
    )
    assert_interrupted(status, stderr, took, prefix="regwatch: ")


def test_ctrl_c_in_out(silent: FaultRegistry, tmp_path: Path) -> None:
    layout = images.write_oci_layout(tmp_path / "img", "v", images.image("interrupted-out"))
    (layout / "single-image-digest").write_text(images.image("interrupted-out").digest)
    request = {
        "source": {"repository": f"{silent.host}/app", "tag": "t"},
        "params": {"image": "img"},
    }
    before = sorted(p.name for p in tmp_path.iterdir())
    status, stderr, took = interrupted(
        command("out", str(tmp_path)),
        json.dumps(request),
        lambda: silent.count("GET", "/v2/") > 0,
    )
    assert_interrupted(status, stderr, took)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def two_layer_image() -> images.Image:
    first = images.layer({"etc/first": b"one"})
    second = images.layer({"etc/second": b"two"})
    config = images.Blob(
        "application/vnd.docker.container.image.v1+json",
        json.dumps({"architecture": "amd64", "os": "linux", "config": {}}).encode(),
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": config.descriptor(),
        "layers": [first.descriptor(), second.descriptor()],
    }
    body = images.Blob(DOCKER_MANIFEST, json.dumps(manifest).encode())
    return images.Image(config, (first, second), body, {"architecture": "amd64", "os": "linux"})


@pytest.mark.parametrize("fmt", ["rootfs", "oci", "oci-layout"])
def test_ctrl_c_in_in_removes_what_it_wrote(tmp_path: Path, fmt: str) -> None:
    """The second layer never arrives; DEST keeps only what was there before."""
    item = two_layer_image()
    destination = tmp_path / "dest"
    destination.mkdir()
    (destination / "kept").write_text("was here before")
    with FaultRegistry() as fault:
        fault.route(
            "GET",
            manifest_path("app", item.digest),
            manifest_reply(item.manifest.data, DOCKER_MANIFEST),
        )
        fault.route("GET", blob_path("app", item.config.digest), blob_reply(item.config.data))
        fault.route("GET", blob_path("app", item.layers[0].digest), blob_reply(item.layers[0].data))
        stalled = blob_path("app", item.layers[1].digest)
        fault.route("GET", stalled, Stall())
        request = {
            "source": {"repository": f"{fault.host}/app"},
            "version": {"tag": "latest", "digest": item.digest},
            "params": {"format": fmt},
        }

        def blocked() -> bool:
            started = fault.count("GET", stalled) > 0
            first_done = fmt != "rootfs" or (destination / "rootfs" / "etc" / "first").exists()
            return started and first_done

        status, stderr, took = interrupted(
            command("in", str(destination)), json.dumps(request), blocked
        )
    assert_interrupted(status, stderr, took)
    assert sorted(p.name for p in destination.iterdir()) == ["kept"]


@pytest.mark.parametrize("what", ["check", "in", "out"])
def test_an_endless_request_on_stdin_is_refused(tmp_path: Path, what: str) -> None:
    args = command(what, *([] if what == "check" else [str(tmp_path)]))
    with open("/dev/zero") as endless:
        done = subprocess.run(
            args, stdin=endless, capture_output=True, text=True, timeout=120, check=False
        )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == ["error: invalid payload: larger than 16 MiB"]

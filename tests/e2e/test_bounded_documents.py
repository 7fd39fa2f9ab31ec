"""A registry that sends far more than it declared: `in` and `check` stop early, in bounded memory.

The fault registry streams 300 MiB from a generator (``tests.hostile.Endless``) for a config or
layer whose descriptor declares no size, a small one, or a huge one. The command must fail with
one line, quickly, having read little of it, and its peak RSS (measured by GNU time, which forks
it from its own small address space) must stay far below what the stream would take.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.e2e.steps import Run, assert_fails
from tests.faults import DOCKER_MANIFEST, blob_path, blob_reply, sha256_digest
from tests.hostile import (
    OCI_CONFIG,
    OCI_LAYER,
    Endless,
    HostileRegistry,
    config_body,
    manifest_body,
    serve_image,
)
from tests.registries import require_tool

REPO = "team/big"
CONFIG = config_body()
STREAM = 300 * 1024 * 1024
PEAK_RSS_LIMIT_KIB = 160 * 1024
"""Far below the 300 MiB stream; regwatch itself needs about 60 MiB."""


@pytest.fixture
def registry() -> Iterator[HostileRegistry]:
    with HostileRegistry() as fake:
        yield fake
    assert fake.server_errors == [], "the fault registry crashed while answering"


def measured(name: str, request: Mapping[str, Any], tmp_path: Path, *args: str) -> tuple[Run, int]:
    """Run `regwatch NAME ARGS` under GNU time: the run and its peak RSS in KiB."""
    gnu_time = require_tool("time")
    script = shutil.which("regwatch")
    assert script, "regwatch is not on PATH"
    rss = tmp_path / "rss"
    done = subprocess.run(
        [gnu_time, "--format=%M", f"--output={rss}", "--", script, name, *args],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    answer = json.loads(done.stdout) if done.returncode == 0 else done.stdout
    return Run(done.returncode, answer, done.stderr), int(rss.read_text().split()[-1])


def endless(*, send_length: bool = True) -> Endless:
    headers = {"Content-Type": "application/octet-stream"}
    return Endless(200, headers=headers, total=STREAM, send_length=send_length)


class ConfigCase(NamedTuple):
    descriptor: Mapping[str, Any]
    """Fields of the config descriptor changed (None: removed)."""
    reply: Endless
    message: str
    requested: bool
    """Whether the blob is asked for at all."""


CONFIG_CASES = {
    "no-size": ConfigCase({"size": None}, endless(), "config.size: field required", False),
    "huge-declared-size": ConfigCase(
        {"size": STREAM},
        endless(),
        f"{STREAM} bytes, more than the 4194304 bytes allowed",
        False,
    ),
    "small-lying-size": ConfigCase(
        {"size": 1000}, endless(), "more than the expected 1000 bytes", True
    ),
    "small-size-no-length": ConfigCase(
        {"size": 1000},
        endless(send_length=False),
        "more than the expected 1000 bytes",
        True,
    ),
    "largest-allowed-size": ConfigCase(
        {"size": 4 * 1024 * 1024},
        endless(send_length=False),
        "more than the expected 4194304 bytes",
        True,
    ),
}


def serve_config(registry: HostileRegistry, changes: Mapping[str, Any], reply: Endless) -> str:
    config: dict[str, Any] = {
        "mediaType": OCI_CONFIG,
        "digest": sha256_digest(CONFIG),
        "size": len(CONFIG),
    }
    config.update(changes)
    manifest = manifest_body(CONFIG, (), config={k: v for k, v in config.items() if v is not None})
    served = serve_image(registry, REPO, manifest, media_type=DOCKER_MANIFEST)
    registry.route("GET", blob_path(REPO, sha256_digest(CONFIG)), reply)
    return served.digest


@pytest.mark.parametrize("name", list(CONFIG_CASES))
@pytest.mark.parametrize("command", ["in", "check"])
def test_an_oversized_config_fails_fast_in_bounded_memory(
    registry: HostileRegistry, tmp_path: Path, name: str, command: str
) -> None:
    changes, reply, message, requested = CONFIG_CASES[name]
    digest = serve_config(registry, changes, reply)
    source: dict[str, Any] = {"repository": f"{registry.host}/{REPO}"}
    destination = tmp_path / "dest"
    started = time.monotonic()
    if command == "in":
        request = {"source": source, "version": {"tag": "v1", "digest": digest}}
        run, peak = measured("in", request, tmp_path, str(destination))
    else:
        request = {"source": {**source, "tag_regex": ".*", "created_at_sort": True}}
        run, peak = measured("check", request, tmp_path)

    assert_fails(run, message)
    assert time.monotonic() - started < 60
    assert peak < PEAK_RSS_LIMIT_KIB, f"peak RSS {peak} KiB"
    assert registry.endless_bytes_sent < 64 * 1024 * 1024
    assert (registry.count("GET", blob_path(REPO, sha256_digest(CONFIG))) > 0) == requested
    if command == "in":
        assert list(destination.iterdir()) == []


@pytest.mark.parametrize("fmt", ["rootfs", "oci", "oci-layout"])
def test_a_layer_longer_than_declared_fails_fast_in_bounded_memory(
    registry: HostileRegistry, tmp_path: Path, fmt: str
) -> None:
    layer_digest = sha256_digest(b"declared layer")
    manifest = manifest_body(
        CONFIG,
        (),
        layers=[{"mediaType": OCI_LAYER, "digest": layer_digest, "size": 1000}],
    )
    served = serve_image(registry, REPO, manifest, media_type=DOCKER_MANIFEST)
    registry.route("GET", blob_path(REPO, sha256_digest(CONFIG)), blob_reply(CONFIG))
    registry.route("GET", blob_path(REPO, layer_digest), endless())
    destination = tmp_path / "dest"
    request = {
        "source": {"repository": f"{registry.host}/{REPO}"},
        "version": {"tag": "v1", "digest": served.digest},
        "params": {"format": fmt},
    }

    run, peak = measured("in", request, tmp_path, str(destination))

    assert_fails(run, "more than the expected 1000 bytes")
    assert peak < PEAK_RSS_LIMIT_KIB, f"peak RSS {peak} KiB"
    assert registry.endless_bytes_sent < 64 * 1024 * 1024
    assert list(destination.iterdir()) == []

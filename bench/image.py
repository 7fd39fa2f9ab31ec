"""The resource image: how fast `check` starts inside it against outside it, and what it weighs.

Run by hand from the repository root, as root (debootstrap, buildah's chroot isolation):

    python -m bench.image [--repeat 10]

It starts a local docker-registry (plain HTTP on loopback), builds the image exactly as the
`image` test does (`tests/resource_image/build.py`: a debootstrap bookworm base pushed to that
registry, `scripts/build-image` with buildah), pushes one small image, and runs the same
tag-mode `check` request `--repeat` times inside the image (`/opt/resource/check`, under
`buildah run --isolation chroot`) and outside it (this checkout's `regwatch check`), in
alternating rounds so both meet the same load. A small Python timer runs the command on each
side, from spawn to exit, so `buildah run`'s own start-up is not counted. Both sides keep their
bytecode caches, as an installed regwatch does. Prints a markdown table for docs/benchmarks.md
(median and best wall time) and the image's size on disk; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.measure import duration, log
from regwatch.refs import Repository
from tests.e2e.steps import client_for, regwatch_command, source_for
from tests.images import image, push
from tests.registries import start_plain_registry
from tests.resource_image.build import Buildah, build_container, remove

REPOSITORY = "bench/image"

TIMER = """
import json, subprocess, sys, time
command, request = json.loads(sys.argv[1]), sys.argv[2]
start = time.perf_counter()
done = subprocess.run(command, input=request, text=True, capture_output=True)
if done.returncode:
    sys.exit(done.stderr)
print(time.perf_counter() - start)
"""
"""Times one run of a command with the request on stdin; the same on both sides."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    tools = {name: shutil.which(name) for name in ("docker-registry", "buildah", "debootstrap")}
    missing = [name for name, path in tools.items() if path is None]
    if missing or os.geteuid() != 0:
        sys.exit(f"bench.image needs root and {', '.join(tools)} (missing: {missing})")
    with tempfile.TemporaryDirectory(prefix="bench-image-") as scratch:
        workdir = Path(scratch)
        for part in ("registry", "image"):
            (workdir / part).mkdir()
        registry = start_plain_registry(str(tools["docker-registry"]), workdir / "registry")
        buildah = Buildah(str(tools["buildah"]), workdir / "buildah")
        try:
            log("building the image (debootstrap base, scripts/build-image)")
            container = build_container(
                buildah, str(tools["debootstrap"]), registry.host, workdir / "image"
            )
            push(client_for(registry), Repository(registry.host, REPOSITORY), "1.0", image("b"))
            request = json.dumps(
                {"source": source_for(registry, f"{registry.host}/{REPOSITORY}", tag="1.0")}
            )
            inside: list[float] = []
            outside: list[float] = []
            outside_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            for round_ in range(args.repeat + 1):
                ran = container.run(
                    "/opt/regwatch/bin/python",
                    "-c",
                    TIMER,
                    json.dumps(["/opt/resource/check"]),
                    request,
                )
                if ran.returncode:
                    sys.exit(f"check inside the image failed: {ran.stderr}")
                here = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        TIMER,
                        json.dumps([*regwatch_command(), "check"]),
                        request,
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                    env=outside_env,
                )
                if here.returncode:
                    sys.exit(f"check outside the image failed: {here.stderr}")
                if round_:  # the first round writes the bytecode caches
                    inside.append(float(ran.stdout))
                    outside.append(float(here.stdout))
                log(f"round {round_}: inside {ran.stdout.strip()}, outside {here.stdout.strip()}")
            sizes = container.run("sh", "-c", "du -sxk /; du -sxk /opt/regwatch")
            whole, venv = (int(line.split()[0]) * 1024 for line in sizes.stdout.splitlines())
        finally:
            remove(buildah)
            registry.stop()
    print(f"`check` in tag mode, {args.repeat} runs each, load {os.getloadavg()[0]:.1f}\n")
    print("| where | median wall | best |")
    print("|---|---|---|")
    for where, times in (("inside the image", inside), ("outside (this checkout)", outside)):
        print(f"| {where} | {duration(statistics.median(times))} | {duration(min(times))} |")
    print(f"\nimage {whole / 1e6:.0f} MB on disk, of which /opt/regwatch {venv / 1e6:.0f} MB")


if __name__ == "__main__":
    main()

"""`out` benchmark: `regwatch out` against `skopeo copy`, pushing one big image, cold and warm.

Run by hand from the repository root (needs docker-registry, skopeo and GNU time):

    python -m bench.out [--repeat 3] [--size-mib 300] [--layers 5]

It builds an image on disk with the `in` benchmark's layer builder (`--layers` gzip layers
holding `--size-mib` MiB of files, seeded pseudo-random and word-salad content, each layer
streamed to its file), lays it out as an OCI image layout with `single-image-digest` (what
`regwatch out` is given) and tars that layout into an `oci-archive` (what a user would hand
to `skopeo copy`). Then, `--repeat` times and interleaved, each tool pushes the image to a
FRESH docker-registry (new storage, new port), once cold and once more warm (same registry,
same tag), as a child process: wall time, CPU (from `wait4`), peak RSS (GNU time's `%M`, see
`run_child`), the registry's CPU, and every request the tool sends.

Requests are counted by a pass-through TCP proxy in front of each registry (it forwards every
chunk as soon as it arrives and follows the HTTP framing to find request heads; bodies are
never buffered), and cross-checked against the registry's access log, which also gives each
request's status.

skopeo's blob-info cache would let a later "cold" push skip or mount blobs it has seen. As
root, skopeo keeps it in /var/lib/containers/cache whatever HOME or XDG_DATA_HOME say, so
skopeo runs in a private mount namespace (`unshare --mount`) with an empty directory of the
round bind-mounted over that path; as another user, XDG_DATA_HOME points at the same empty
directory. Both tools also get a fresh registry per round, and the benchmark asserts that the
cold pushes upload every blob and mount none.

Prints a markdown table for docs/benchmarks.md; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast
from urllib.parse import parse_qs, urlsplit

from bench.measure import GNU_TIME, cpu_seconds, duration, log, run_child
from regwatch.image.mediatypes import OCI_INDEX, OCI_MANIFEST
from tests.registries import RegistryServer, start_plain_registry

REPOSITORY = "bench/out"
TAG = "bench"
MIB = 1024 * 1024
RECV_BYTES = 1024 * 1024
ROOT_BLOB_CACHE = Path("/var/lib/containers/cache")
"""Where skopeo (containers/image) keeps its blob-info cache when it runs as root."""
CACHE_FILE = "blob-info-cache-v1.boltdb"
TLS_PROBE = "TLS probe"
"""How a connection is counted that opens with a TLS record: the https attempt both tools make
before they fall back to plain HTTP (the registry answers it with a 400 and no log line)."""
METHODS = (TLS_PROBE, "GET", "HEAD", "POST", "PATCH", "PUT", "DELETE")
READ_ONLY = frozenset({TLS_PROBE, "GET", "HEAD"})
ACCESS_LOG_WAIT = 5.0
"""GNU time (Debian package `time`), for the peak RSS of each command (see `run_child`)."""


# -- the image on disk --------------------------------------------------------------------------


class _BuiltLayer(Protocol):
    @property
    def path(self) -> Path: ...
    @property
    def digest(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def tar_size(self) -> int: ...


class _BuiltImage(Protocol):
    @property
    def layers(self) -> tuple[_BuiltLayer, ...]: ...
    @property
    def config(self) -> bytes: ...
    @property
    def manifest(self) -> bytes: ...
    @property
    def digest(self) -> str: ...


def _image_builder() -> Callable[[Path, int, int], _BuiltImage]:
    """bench/in.py's `build_image` (`in` is a keyword, so no `from bench.in import …`)."""
    module = importlib.import_module("bench.in")
    return cast(Callable[[Path, int, int], _BuiltImage], module.build_image)


def hex_of(digest: str) -> str:
    return digest.partition(":")[2]


def sha256_digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


@dataclass(frozen=True)
class Layout:
    sources: Path
    """The `out` step's sources directory; the layout is its `image/` directory."""
    archive: Path
    digest: str
    blobs: dict[str, int]
    """Every blob the image manifest names (config and layers): digest → size."""
    tar_bytes: int

    @property
    def directory(self) -> Path:
        return self.sources / "image"

    @property
    def blob_bytes(self) -> int:
        return sum(self.blobs.values())


def build_layout(work: Path, size_mib: int, layers: int) -> Layout:
    """The image as an OCI image layout (plus `single-image-digest`) and as an oci-archive."""
    scratch = work / "layers"
    scratch.mkdir()
    image = _image_builder()(scratch, size_mib, layers)
    sources = work / "sources"
    directory = sources / "image"
    blob_dir = directory / "blobs" / "sha256"
    blob_dir.mkdir(parents=True)
    blobs: dict[str, int] = {}
    for layer in image.layers:
        layer.path.rename(blob_dir / hex_of(layer.digest))
        blobs[layer.digest] = layer.size
    config_digest = sha256_digest(image.config)
    (blob_dir / hex_of(config_digest)).write_bytes(image.config)
    blobs[config_digest] = len(image.config)
    (blob_dir / hex_of(image.digest)).write_bytes(image.manifest)
    scratch.rmdir()
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": image.digest,
                "size": len(image.manifest),
                "annotations": {"org.opencontainers.image.ref.name": TAG},
            }
        ],
    }
    (directory / "index.json").write_text(json.dumps(index))
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (directory / "single-image-digest").write_text(image.digest)
    archive = work / "image.oci-archive.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("oci-layout", "index.json", "blobs"):
            tar.add(directory / name, arcname=name)  # streamed from the files
    tar_bytes = sum(layer.tar_size for layer in image.layers)
    return Layout(sources, archive, image.digest, blobs, tar_bytes)


# -- counting proxy -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    target: str


_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _TRAILER, _OPAQUE = range(6)


class _RequestStream:
    """Follows what a client sends on one connection and picks out every request head.

    Bodies are skipped by their Content-Length or their chunked framing, never kept. A
    connection that opens with a TLS record counts as one TLS probe and is not parsed further.
    """

    def __init__(self) -> None:
        self._state = _HEAD
        self._pending = b""
        self._left = 0
        self._fresh = True

    def feed(self, data: bytes) -> list[Request]:
        if self._fresh:
            self._fresh = False
            if data[:1] == b"\x16":
                self._state = _OPAQUE
                return [Request(TLS_PROBE, "")]
        found: list[Request] = []
        view = memoryview(data)
        while view and self._state != _OPAQUE:
            if self._state in (_BODY, _CHUNK_DATA):
                step = min(self._left, len(view))
                view = view[step:]
                self._left -= step
                if not self._left:
                    self._state = _CHUNK_SIZE if self._state == _CHUNK_DATA else _HEAD
                continue
            marker = b"\r\n\r\n" if self._state == _HEAD else b"\r\n"
            buffer = self._pending + bytes(view)
            end = buffer.find(marker)
            if end < 0:
                self._pending = buffer
                break
            self._pending = b""
            view = memoryview(buffer)[end + len(marker) :]
            request = self._unit(buffer[:end])
            if request is not None:
                found.append(request)
        return found

    def _unit(self, unit: bytes) -> Request | None:
        """Act on one request head, chunk-size line or trailer line."""
        if self._state == _CHUNK_SIZE:
            size = int(unit.split(b";", 1)[0].strip(), 16)
            self._state, self._left = (_TRAILER, 0) if size == 0 else (_CHUNK_DATA, size + 2)
            return None
        if self._state == _TRAILER:
            if not unit:
                self._state = _HEAD
            return None
        lines = unit.lstrip(b"\r\n").split(b"\r\n")
        method, target = (part.decode("latin-1") for part in lines[0].split(b" ")[:2])
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            self._state = _CHUNK_SIZE
        elif int(headers.get(b"content-length", b"0") or b"0") > 0:
            self._state, self._left = _BODY, int(headers[b"content-length"])
        return Request(method, target)


class CountingProxy:
    """A threaded TCP proxy on 127.0.0.1 that forwards at once and notes every request head.

    Heads are noted before their bytes are forwarded, so by the time a client has its last
    answer, every request it sent is counted. Also counts the bytes clients send.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._sent = 0
        self._thread = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> CountingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
        self._listener.close()

    def take(self) -> tuple[list[Request], int]:
        """The requests and bytes clients sent since the last call."""
        with self._lock:
            requests, self._requests = self._requests, []
            sent, self._sent = self._sent, 0
        return requests, sent

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            try:
                upstream = socket.create_connection(self._upstream)
            except OSError:
                return
            with upstream:
                answers = threading.Thread(
                    target=self._pump, args=(upstream, client, None), daemon=True
                )
                answers.start()
                self._pump(client, upstream, _RequestStream())
                answers.join()

    def _pump(
        self, source: socket.socket, target: socket.socket, stream: _RequestStream | None
    ) -> None:
        try:
            while data := source.recv(RECV_BYTES):
                if stream is not None:
                    found = stream.feed(data)
                    with self._lock:
                        self._requests.extend(found)
                        self._sent += len(data)
                target.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)


# -- one fresh registry per round ---------------------------------------------------------------


@dataclass(frozen=True)
class Logged:
    """One line of the registry's access log."""

    method: str
    target: str
    status: int


_ACCESS_LINE = re.compile(rb'^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) ')


@dataclass
class Target:
    server: RegistryServer
    proxy: CountingProxy
    workdir: Path
    log_offset: int = 0

    @property
    def host(self) -> str:
        """Where the tools push: through the counting proxy."""
        return self.proxy.host

    def take_log(self) -> list[Logged]:
        """The access-log lines the registry wrote since the last call."""
        with self.server.log_path.open("rb") as file:
            file.seek(self.log_offset)
            data = file.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.log_offset += len(complete)
        return [
            Logged(match[1].decode(), match[2].decode(), int(match[3]))
            for line in complete.splitlines()
            if (match := _ACCESS_LINE.match(line))
        ]


@contextlib.contextmanager
def fresh_target(registry_bin: str, workdir: Path) -> Iterator[Target]:
    """A new docker-registry (new storage, new port) behind a new proxy; removed afterwards."""
    workdir.mkdir()
    server = start_plain_registry(registry_bin, workdir)
    try:
        host, port = server.host.rsplit(":", 1)
        proxy = CountingProxy((host, int(port))).start()
        try:
            target = Target(server, proxy, workdir)
            target.take_log()  # the readiness probes
            yield target
        finally:
            proxy.stop()
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# -- measuring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float
    rss_kib: int
    registry_cpu: float
    proxy_cpu: float
    requests: tuple[Request, ...]
    logged: tuple[Logged, ...]
    sent: int
    stdout: bytes = field(repr=False)

    @property
    def methods(self) -> Counter[str]:
        return Counter(request.method for request in self.requests)

    def __str__(self) -> str:
        statuses = Counter(f"{e.method} {kind_of(e.target)} {e.status}" for e in self.logged)
        return (
            f"{self.wall:.2f} s wall, {self.cpu:.2f} s CPU, {self.rss_kib / 1024:.0f} MiB peak "
            f"RSS, registry {self.registry_cpu:.2f} s CPU, proxy {self.proxy_cpu:.2f} s CPU, "
            f"{self.sent / 1e6:.1f} MB sent; {requests_text(self.methods)}; "
            f"registry log: {dict(sorted(statuses.items()))}"
        )


def measure(
    target: Target, args: Sequence[str], stdin: bytes, env: Mapping[str, str], logs: Path
) -> Sample:
    """Time one push; its requests as the proxy saw them and as the registry logged them."""
    os.sync()  # the previous push's writeback must not land in this one
    target.proxy.take()
    target.take_log()
    registry_before, bench_before = cpu_seconds(target.server.pid), time.process_time()
    started = time.perf_counter()
    measured = run_child(args, logs, stdin=stdin, env=env)
    cpu, rss, stdout = measured.cpu, measured.rss_kib, measured.stdout
    wall = time.perf_counter() - started
    registry = cpu_seconds(target.server.pid) - registry_before
    proxy = time.process_time() - bench_before  # the main thread only waited: proxy threads
    requests, sent = target.proxy.take()
    expected = sum(1 for request in requests if request.method != TLS_PROBE)
    logged = target.take_log()
    deadline = time.monotonic() + ACCESS_LOG_WAIT
    while len(logged) < expected and time.monotonic() < deadline:
        time.sleep(0.05)  # the registry writes its access log line after answering
        logged += target.take_log()
    seen = Counter((r.method, r.target) for r in requests if r.method != TLS_PROBE)
    assert seen == Counter((e.method, e.target) for e in logged), (
        f"the proxy saw {sorted(seen.elements())}, the registry logged {logged}"
    )
    return Sample(wall, cpu, rss, registry, proxy, tuple(requests), tuple(logged), sent, stdout)


def kind_of(target: str) -> str:
    """What a request path names, for the log: ping, manifest, blob, upload or mount."""
    path = urlsplit(target).path
    if path == "/v2/":
        return "ping"
    if "/blobs/uploads/" in path:
        return "mount" if "mount=" in target else "upload"
    for kind in ("manifests", "blobs", "tags"):
        if f"/{kind}/" in path:
            return kind.rstrip("s")
    return path


def requests_text(methods: Counter[str]) -> str:
    parts = [f"{methods[m]} {m}" for m in METHODS if methods[m]]
    parts += [f"{n} {m}" for m, n in sorted(methods.items()) if m not in METHODS]
    return f"{sum(methods.values())} ({', '.join(parts)})"


# -- what every push must (not) do --------------------------------------------------------------


def uploaded_digests(sample: Sample) -> set[str]:
    """Blobs whose upload the registry completed (`PUT …/uploads/…?digest=` answered 201)."""
    done: set[str] = set()
    for entry in sample.logged:
        if entry.method == "PUT" and "/blobs/uploads/" in entry.target and entry.status == 201:
            done.update(parse_qs(urlsplit(entry.target).query).get("digest", []))
    return done


def assert_cold(sample: Sample, layout: Layout, tool: str) -> None:
    mounts = [e.target for e in sample.logged if "mount=" in e.target]
    assert not mounts, f"{tool} cold push mounted blobs instead of uploading them: {mounts}"
    missing = set(layout.blobs) - uploaded_digests(sample)
    assert not missing, f"{tool} cold push did not upload {sorted(missing)}"
    assert sample.sent >= layout.blob_bytes, f"{tool} sent {sample.sent} bytes"


def assert_warm(sample: Sample, tool: str, *, read_only: bool) -> None:
    uploads = [e.target for e in sample.logged if "/blobs/uploads/" in e.target]
    assert not uploads, f"{tool} warm push uploaded again: {uploads}"
    if read_only:
        writes = set(sample.methods) - READ_ONLY
        assert not writes, f"{tool} warm push sent {sorted(writes)}: {sample.requests}"


# -- the tools ----------------------------------------------------------------------------------


class Bench:
    def __init__(self, work: Path, layout: Layout, registry_bin: str, skopeo: str) -> None:
        self._work = work
        self._layout = layout
        self._registry_bin = registry_bin
        self._skopeo = skopeo
        self._runs = 0

    def fresh(self, name: str) -> Path:
        self._runs += 1
        path = self._work / f"{self._runs:02d}-{name}"
        path.mkdir()
        return path

    def regwatch(self) -> tuple[Sample, Sample]:
        """`regwatch out` of the layout, cold into a fresh registry, then warm."""
        round_dir = self.fresh("regwatch")
        env = {**os.environ, "TMPDIR": str(round_dir)}
        with fresh_target(self._registry_bin, round_dir / "registry") as target:
            request = {
                "source": {"repository": f"{target.host}/{REPOSITORY}", "tag": TAG},
                "params": {"image": "image"},
            }
            args = [sys.executable, "-m", "regwatch", "out", str(self._layout.sources)]
            stdin = json.dumps(request).encode()
            cold = measure(target, args, stdin, env, round_dir / "cold")
            warm = measure(target, args, stdin, env, round_dir / "warm")
            for sample in (cold, warm):
                answer = json.loads(sample.stdout)
                assert answer["version"] == {"tag": TAG, "digest": self._layout.digest}, answer
            assert_cold(cold, self._layout, "regwatch")
            assert_warm(warm, "regwatch", read_only=True)
            self.verify(target, "regwatch")
        shutil.rmtree(round_dir)
        return cold, warm

    def skopeo_copy(self, source: str) -> tuple[Sample, Sample]:
        """`skopeo copy SOURCE docker://…`, cold into a fresh registry with an empty
        blob-info cache, then warm (same registry, same cache)."""
        round_dir = self.fresh("skopeo")
        data_home = round_dir / "data"
        cache = data_home / "containers" / "cache"
        cache.mkdir(parents=True)
        env = {**os.environ, "TMPDIR": str(round_dir), "XDG_DATA_HOME": str(data_home)}
        with fresh_target(self._registry_bin, round_dir / "registry") as target:
            copy = [
                self._skopeo,
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                source,
                f"docker://{target.host}/{REPOSITORY}:{TAG}",
            ]
            args = isolated(copy, cache)
            cold = measure(target, args, b"", env, round_dir / "cold")
            assert (cache / CACHE_FILE).exists(), f"skopeo did not use {cache} for its cache"
            warm = measure(target, args, b"", env, round_dir / "warm")
            assert_cold(cold, self._layout, "skopeo")
            assert_warm(warm, "skopeo", read_only=False)
            self.verify(target, "skopeo")
        shutil.rmtree(round_dir)
        return cold, warm

    def verify(self, target: Target, tool: str) -> None:
        """The tag's digest, asked with `regwatch digest` straight from the registry."""
        reference = f"{target.server.host}/{REPOSITORY}:{TAG}"
        done = subprocess.run(
            [sys.executable, "-m", "regwatch", "digest", reference],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        digest = done.stdout.strip()
        assert digest == self._layout.digest, f"after {tool}: {reference} is {digest}"


def isolated(command: Sequence[str], cache: Path) -> list[str]:
    """`command` with `cache` as skopeo's blob-info cache directory (see the module docstring).

    As root, containers/image ignores XDG_DATA_HOME and HOME: the command runs in a private
    mount namespace where `cache` is bind-mounted over /var/lib/containers/cache (created
    first if missing, as skopeo would); `exec` keeps the process we `wait4` on the tool itself.
    """
    if os.geteuid() != 0:
        return list(command)
    ROOT_BLOB_CACHE.mkdir(mode=0o700, parents=True, exist_ok=True)
    script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
        str(cache),
        str(ROOT_BLOB_CACHE),
        *command,
    ]


# -- reporting ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    tool: str
    source: str
    push: str
    samples: list[Sample]

    def median(self, value: Callable[[Sample], float]) -> float:
        return statistics.median(value(s) for s in self.samples)

    @property
    def rss_mib(self) -> float:
        return max(s.rss_kib for s in self.samples) / 1024

    @property
    def requests(self) -> str:
        distinct = dict.fromkeys(requests_text(s.methods) for s in self.samples)
        return " / ".join(distinct)


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| tool | source | push | median wall | peak RSS | CPU (user + sys) | registry CPU "
        "| requests | sent | runs (wall) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        runs = ", ".join(f"{s.wall:.2f}" for s in row.samples)
        lines.append(
            f"| {row.tool} | {row.source} | {row.push} | {duration(row.median(wall_of))} "
            f"| {row.rss_mib:.0f} MiB | {duration(row.median(cpu_of))} "
            f"| {duration(row.median(registry_of))} | {row.requests} "
            f"| {megabytes(row.median(sent_of))} | {runs} |"
        )
    return "\n".join(lines)


def wall_of(sample: Sample) -> float:
    return sample.wall


def cpu_of(sample: Sample) -> float:
    return sample.cpu


def registry_of(sample: Sample) -> float:
    return sample.registry_cpu


def sent_of(sample: Sample) -> float:
    return sample.sent


def megabytes(count: float) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 1e5 else f"{count / 1e3:.1f} kB"


# -- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=300)
    parser.add_argument("--layers", type=int, default=5)
    args = parser.parse_args()
    if args.repeat < 1 or args.layers < 1 or args.size_mib < args.layers:
        parser.error("--repeat and --layers must be at least 1, --size-mib at least --layers")
    needed = ["docker-registry", "skopeo", *(["unshare"] if os.geteuid() == 0 else [])]
    tools = {name: shutil.which(name) for name in needed}
    tools[GNU_TIME] = GNU_TIME if os.access(GNU_TIME, os.X_OK) else None
    if not all(tools.values()):
        missing = ", ".join(name for name, path in tools.items() if not path)
        raise SystemExit(f"needs {missing}")
    log(f"load average at the start: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="regwatch-bench-out-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        layout = build_layout(work, args.size_mib, args.layers)
        log(
            f"built {layout.digest} in {time.perf_counter() - started:.1f} s: "
            f"{len(layout.blobs) - 1} layers, {layout.tar_bytes / MIB:.0f} MiB of tar, "
            f"{layout.blob_bytes / 1e6:.0f} MB of blobs, oci-archive "
            f"{layout.archive.stat().st_size / 1e6:.0f} MB"
        )
        bench = Bench(work, layout, str(tools["docker-registry"]), str(tools["skopeo"]))
        rows = run(bench, layout, args.repeat)
        log(f"load average at the end: {load_average()}")
        print(
            f"Image: {len(layout.blobs) - 1} layers, {layout.tar_bytes / MIB:.0f} MiB "
            f"uncompressed, {layout.blob_bytes / 1e6:.0f} MB of gzip blobs; median of "
            f"{args.repeat} runs, peak RSS the highest of them.\n"
        )
        print(table(rows))


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def run(bench: Bench, layout: Layout, repeat: int) -> list[Row]:
    archive, directory = f"oci-archive:{layout.archive}", f"oci:{layout.directory}"
    pushes: list[tuple[str, str, Callable[[], tuple[Sample, Sample]]]] = [
        ("regwatch out", "OCI layout", bench.regwatch),
        ("skopeo copy", "oci-archive", lambda: bench.skopeo_copy(archive)),
        ("skopeo copy", "oci: (layout)", lambda: bench.skopeo_copy(directory)),
    ]
    rows: dict[tuple[str, str, str], Row] = {}
    for attempt in range(1, repeat + 1):
        for tool, source, push in pushes:
            samples = push()
            for phase, sample in zip(("cold", "warm"), samples, strict=True):
                key = (tool, source, phase)
                rows.setdefault(key, Row(tool, source, phase, [])).samples.append(sample)
                log(f"run {attempt}: {tool} {source} {phase}: {sample}")
    return list(rows.values())


if __name__ == "__main__":
    main()

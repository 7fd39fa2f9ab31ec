"""Check benchmark: wall time of `Service.check` over thousands of semver tags, by concurrency.

Run by hand from the repository root (needs docker-registry):

    python -m bench.check [--tags 5000] [--latency-ms 15] [--repeat 3] [--sequential-repeat N]

It starts a local docker-registry, seeds one repository with N semver tags (each a distinct
manifest) plus `latest`, and times `Service.check` in this process: a cold check (no
cursor) and a check from the 10th-newest version, at several concurrencies, directly on loopback
and through a latency proxy that holds every chunk it forwards for `--latency-ms` in each
direction (the kernel here has no netem). Every configuration must return exactly what the
sequential check returns, and the cold answer must be every seeded version in ascending order.
Prints a markdown table for docs/benchmarks.md; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import queue
import shutil
import socket
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.measure import cpu_seconds, duration, log
from regwatch.config import Source
from regwatch.frontends.sources import watch_spec
from regwatch.image.mediatypes import OCI_MANIFEST
from regwatch.net import Transport
from regwatch.refs import Reference, Repository
from regwatch.registry.client import RegistryClient
from regwatch.service import Service
from regwatch.specs import TagDigest as Version
from tests import images
from tests.registries import RegistryServer, start_plain_registry

REPOSITORY = "bench/check"
CURSOR_DEPTH = 10
"""The cursor sits at the 10th-newest version, so a check resolves only the tags above it."""
SEED_THREADS = 8
TLS = "TLS handshake"
"""How both request counters name the https probe the client makes before falling back to http."""


# -- seeding ------------------------------------------------------------------------------------


def tag_of(index: int) -> str:
    return f"1.{index // 100}.{index % 100}"


def seed(server: RegistryServer, count: int) -> list[Version]:
    """Push `count` distinct manifests tagged 1.x.y (oldest first) and `latest` on the newest.

    All manifests share one config and one layer, uploaded once; an annotation makes each
    manifest (and so its digest) unique. Returns the versions in ascending order.
    """
    client = RegistryClient(server.host, Transport())
    repository = Repository(server.host, REPOSITORY)
    image = images.image("bench-check")
    for blob in (image.config, *image.layers):
        client.upload_blob(repository, blob.data, blob.digest, len(blob.data))
    template = json.loads(image.manifest.data)

    def push(index: int) -> Version:
        body = json.dumps({**template, "annotations": {"bench.regwatch/index": str(index)}})
        reference = Reference(repository, tag=tag_of(index))
        digest = client.put_manifest(reference, body.encode(), OCI_MANIFEST)
        return Version(tag=tag_of(index), digest=digest)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=SEED_THREADS) as pool:
        versions = list(pool.map(push, range(count)))
    newest = json.dumps({**template, "annotations": {"bench.regwatch/index": str(count - 1)}})
    latest = client.put_manifest(Reference(repository, tag="latest"), newest.encode(), OCI_MANIFEST)
    assert latest == versions[-1].digest, "latest must carry the newest version's manifest"
    elapsed = time.perf_counter() - started
    log(f"seeded {count} tags + latest in {elapsed:.1f} s ({count / elapsed:.0f} manifests/s)")
    return versions


# -- latency proxy ------------------------------------------------------------------------------


class _RequestHeads:
    """Splits what a client sends into request heads, to count requests by method.

    Only right for requests without a body, which is all a check sends (GET and HEAD). A
    connection that opens with a TLS record is the client's https probe: one request.
    """

    def __init__(self) -> None:
        self._pending = b""
        self._started = False
        self._tls = False

    def feed(self, chunk: bytes) -> list[str]:
        if not self._started:
            self._started = True
            self._tls = chunk[:1] == b"\x16"
            if self._tls:
                return [TLS]
        if self._tls:
            return []
        self._pending += chunk
        *heads, self._pending = self._pending.split(b"\r\n\r\n")
        return [head.split(b" ", 1)[0].decode("ascii", "replace") for head in heads]


class LatencyProxy:
    """A threaded TCP proxy on 127.0.0.1 that delivers every chunk `latency` seconds late.

    Each direction of a connection is a delay line: one thread reads and stamps chunks, another
    sleeps until each is due and sends it, so delays do not add up when several chunks are in
    flight. A new connection waits one round trip first, like a TCP handshake.
    """

    def __init__(self, upstream: tuple[str, int], latency: float) -> None:
        self._upstream = upstream
        self._latency = latency
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._thread = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)

    def start(self) -> LatencyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
        self._listener.close()

    def take_counts(self) -> Counter[str]:
        """Requests seen by method since the last call."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        return counts

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
        client.settimeout(None)
        time.sleep(2 * self._latency)
        try:
            upstream = socket.create_connection(self._upstream)
        except OSError:
            client.close()
            return
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        directions = [
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True),
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True),
        ]
        for thread in directions:
            thread.start()
        for thread in directions:
            thread.join()
        client.close()
        upstream.close()

    def _pipe(self, source: socket.socket, target: socket.socket, outbound: bool) -> None:
        line: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()
        sender = threading.Thread(target=self._deliver, args=(line, source, target), daemon=True)
        sender.start()
        heads = _RequestHeads() if outbound else None
        try:
            while chunk := source.recv(65536):
                if heads is not None:
                    self._count(heads.feed(chunk))
                line.put((time.monotonic() + self._latency, chunk))
        except OSError:
            pass
        line.put((time.monotonic() + self._latency, b""))  # end of stream
        sender.join()

    def _deliver(
        self,
        line: queue.SimpleQueue[tuple[float, bytes]],
        source: socket.socket,
        target: socket.socket,
    ) -> None:
        while True:
            due, chunk = line.get()
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                if not chunk:
                    target.shutdown(socket.SHUT_WR)
                    return
                target.sendall(chunk)
            except OSError:
                # The far side is gone: wake both readers so the connection winds down.
                for sock in (source, target):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                return

    def _count(self, methods: Sequence[str]) -> None:
        if methods:
            with self._lock:
                self._counts.update(methods)


# -- measuring ----------------------------------------------------------------------------------


class _RequestLog(logging.Handler):
    """Counts the client's requests from urllib3's debug log: one line per HTTP answer, plus
    one per https connection started (the probe that fails before the client falls back)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        message = str(record.msg)
        if message.startswith("Starting new HTTPS connection"):
            self.counts[TLS] += 1
        elif message.startswith('%s://%s:%s "%s %s %s"') and isinstance(record.args, tuple):
            self.counts[str(record.args[3])] += 1

    def take_counts(self) -> Counter[str]:
        self.acquire()
        try:
            counts, self.counts = self.counts, Counter()
        finally:
            self.release()
        return counts


@contextlib.contextmanager
def request_log() -> Iterator[_RequestLog]:
    logger = logging.getLogger("urllib3.connectionpool")
    handler = _RequestLog()
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


@dataclass(frozen=True)
class Config:
    scenario: str
    path: str
    concurrency: int
    cursor: Version | None
    repeat: int


@dataclass(frozen=True)
class Result:
    config: Config
    seconds: float
    requests: Counter[str]
    client_cpu: float
    registry_cpu: float
    versions: list[Version]


class Bench:
    def __init__(self, server: RegistryServer, proxy: LatencyProxy, requests: _RequestLog) -> None:
        self._server = server
        self._proxy = proxy
        self._requests = requests

    def host(self, path: str) -> str:
        return self._server.host if path == "loopback" else f"127.0.0.1:{self._proxy.port}"

    def run(self, config: Config) -> Result:
        source = Source.model_validate(
            {
                "repository": f"{self.host(config.path)}/{REPOSITORY}",
                "concurrency": config.concurrency,
            }
        )
        samples: list[tuple[float, float, float]] = []
        counts: list[Counter[str]] = []
        answers: list[list[Version]] = []
        for attempt in range(config.repeat):
            self._requests.take_counts()
            self._proxy.take_counts()
            registry_before, client_before = cpu_seconds(self._server.pid), time.process_time()
            started = time.perf_counter()
            with Service() as service:  # a fresh one per check, as each Concourse check is
                answers.append(
                    service.check(watch_spec(source, unresolved="resolve"), config.cursor)
                )
            seconds = time.perf_counter() - started
            client = time.process_time() - client_before
            registry = cpu_seconds(self._server.pid) - registry_before
            samples.append((seconds, client, registry))
            counts.append(self._requests.take_counts())
            seen = self._proxy.take_counts()
            if config.path != "loopback":
                assert seen == counts[-1], f"proxy saw {dict(seen)}, client sent {dict(counts[-1])}"
            log(
                f"  {config.scenario}, {config.path}, concurrency {config.concurrency}, "
                f"run {attempt + 1}/{config.repeat}: {seconds:.2f} s, "
                f"{sum(counts[-1].values())} requests {dict(counts[-1])}"
            )
        assert all(a == answers[0] for a in answers), "repeated runs answered differently"
        assert all(c == counts[0] for c in counts), "repeated runs sent different requests"
        median = statistics.median(s[0] for s in samples)
        client_cpu = statistics.median(s[1] for s in samples)
        registry_cpu = statistics.median(s[2] for s in samples)
        return Result(config, median, counts[0], client_cpu, registry_cpu, answers[0])


def plan(args: argparse.Namespace, latency_ms: int, cursor: Version) -> list[Config]:
    proxied = f"proxy, +{latency_ms} ms each way"
    sequential_repeat = args.sequential_repeat or args.repeat
    cold, warm = "cold check (no cursor)", f"cursor at {CURSOR_DEPTH}th-newest"
    return [
        Config(cold, "loopback", 1, None, args.repeat),
        Config(cold, "loopback", 8, None, args.repeat),
        Config(cold, proxied, 1, None, sequential_repeat),
        Config(cold, proxied, 8, None, args.repeat),
        Config(cold, proxied, 16, None, args.repeat),
        Config(warm, proxied, 1, cursor, args.repeat),
        Config(warm, proxied, 8, cursor, args.repeat),
    ]


def verify(results: Sequence[Result], seeded: Sequence[Version]) -> None:
    """Every configuration answers exactly what the sequential check of its scenario does."""
    baselines: dict[str, list[Version]] = {}
    for result in results:
        baseline = baselines.setdefault(result.config.scenario, result.versions)
        assert result.versions == baseline, (
            f"{result.config} answered {len(result.versions)} versions, "
            f"the sequential check {len(baseline)}"
        )
    cold = results[0].versions
    assert cold == list(seeded), "the cold check must answer every seeded version, ascending"
    for result in results:
        if result.config.cursor is not None:
            expected = list(seeded[-CURSOR_DEPTH:])
            assert result.versions == expected, "a cursor check answers the cursor and newer"


def table(results: Sequence[Result]) -> str:
    lines = [
        "| scenario | path | concurrency | median wall | requests | speed-up vs sequential "
        "| CPU: bench process / registry |",
        "|---|---|---|---|---|---|---|",
    ]
    sequential: dict[tuple[str, str], float] = {}
    for result in results:
        config = result.config
        base = sequential.setdefault((config.scenario, config.path), result.seconds)
        total = sum(result.requests.values())
        heads = result.requests.get("HEAD", 0)
        runs = "" if config.repeat > 1 else " (1 run)"
        lines.append(
            f"| {config.scenario} | {config.path} | {config.concurrency} "
            f"| {duration(result.seconds)}{runs} | {total} ({heads} HEAD) "
            f"| {base / result.seconds:.2f}× "
            f"| {duration(result.client_cpu)} / {duration(result.registry_cpu)} |"
        )
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tags", type=int, default=5000)
    parser.add_argument("--latency-ms", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--sequential-repeat",
        type=int,
        default=0,
        help="runs of the sequential cold check through the proxy (default: --repeat)",
    )
    args = parser.parse_args()
    if args.tags < CURSOR_DEPTH:
        parser.error(f"--tags must be at least {CURSOR_DEPTH}")
    registry_bin = shutil.which("docker-registry")
    if not registry_bin:
        raise SystemExit("needs docker-registry (scripts/test installs it)")
    with tempfile.TemporaryDirectory(prefix="regwatch-bench-") as tmp:
        server = start_plain_registry(registry_bin, Path(tmp))
        try:
            run(server, args)
        finally:
            server.stop()


def run(server: RegistryServer, args: argparse.Namespace) -> None:
    seeded = seed(server, args.tags)
    host, port = server.host.rsplit(":", 1)
    proxy = LatencyProxy((host, int(port)), args.latency_ms / 1000).start()
    try:
        with request_log() as requests:
            bench = Bench(server, proxy, requests)
            cursor = seeded[-CURSOR_DEPTH]
            log("warm-up (imports, first store):")
            bench.run(Config("warm-up", "loopback", 8, cursor, 1))
            results = [bench.run(config) for config in plan(args, args.latency_ms, cursor)]
    finally:
        proxy.stop()
    verify(results, seeded)
    print(table(results))


if __name__ == "__main__":
    main()

"""Registry client benchmark: requests per `tags` call, and 1,000 manifest HEADs.

Run by hand from the repository root (needs docker-registry and htpasswd):

    python -m bench.registry [--heads 1000]

It starts local registries (plain, TLS + Basic, token), pushes one image, and prints a markdown
table for docs/benchmarks.md. Loopback hides round trips; compare the rows of one run as ratios.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from regwatch.net import Transport
from regwatch.refs import Reference, Repository
from regwatch.registry.client import RegistryClient
from regwatch.registry.credentials import StaticCredentials
from tests import images
from tests.registries import (
    RegistryServer,
    start_plain_registry,
    start_tls_registry,
    start_token_registry,
)


def client_for(server: RegistryServer) -> tuple[RegistryClient, Transport]:
    transport = Transport(ca_certs=[server.ca_pem] if server.ca_pem else [])
    credentials = (
        StaticCredentials(server.username, server.password or "") if server.username else None
    )
    return RegistryClient(server.host, transport, credentials), transport


def timed(work: Callable[[], object], repeat: int = 3) -> float:
    """Median wall time of `repeat` runs, in seconds."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--heads", type=int, default=1000)
    args = parser.parse_args()
    registry_bin, htpasswd_bin = shutil.which("docker-registry"), shutil.which("htpasswd")
    if not registry_bin or not htpasswd_bin:
        raise SystemExit("needs docker-registry and htpasswd (scripts/test installs them)")
    with tempfile.TemporaryDirectory(prefix="regwatch-bench-") as tmp:
        work = Path(tmp)
        for kind in ("plain", "tls", "token"):
            (work / kind).mkdir()
        servers = [
            start_plain_registry(registry_bin, work / "plain"),
            start_tls_registry(registry_bin, htpasswd_bin, work / "tls"),
            start_token_registry(registry_bin, work / "token"),
        ]
        try:
            run(servers, args.heads)
        finally:
            for server in servers:
                server.stop()


def run(servers: list[RegistryServer], heads: int) -> None:
    print(
        "| registry | requests per `tags` | HEADs | sequential, reused connection | "
        "8 threads, shared client | sequential, new connection each |"
    )
    print("|---|---|---|---|---|---|")
    for server in servers:
        print(measure(server, heads))


def measure(server: RegistryServer, heads: int) -> str:
    client, _ = client_for(server)
    repo = Repository(server.host, "bench/app")
    images.push(client, repo, "v1", images.image("bench"))

    fresh, fresh_transport = client_for(server)
    fresh.list_tags(repo)
    per_tags = fresh_transport.requests_sent

    ref = Reference(repo, tag="v1")
    reader, _ = client_for(server)
    reader.resolve(ref)

    def sequential() -> None:
        for _ in range(heads):
            reader.resolve(ref)

    def threaded() -> None:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda _: reader.resolve(ref), range(heads)))

    seq = timed(sequential)
    par = timed(threaded)
    cold = timed(lambda: no_reuse(server, heads, reader), repeat=1)
    return (
        f"| {server.kind} | {per_tags} | {heads} | {seq:.2f} s ({heads / seq:.0f}/s) | "
        f"{par:.2f} s ({heads / par:.0f}/s) | {cold:.2f} s ({heads / cold:.0f}/s) |"
    )


def no_reuse(server: RegistryServer, heads: int, reader: RegistryClient) -> None:
    """The same HEADs with `Connection: close`: what a client without keep-alive pays."""
    auth = reader._connected().authenticator  # reuse the token, not the socket
    scope = ("repository:bench/app:pull",)
    verify: str | bool = True
    if server.ca_pem:
        verify = str(server.ca_path)
    url = f"{reader.base_url}/v2/bench/app/manifests/v1"
    for _ in range(heads):
        headers = {"Connection": "close", "Accept": "application/vnd.oci.image.manifest.v1+json"}
        value = auth.authorization(scope)
        if value:
            headers["Authorization"] = value
        requests.head(url, headers=headers, verify=verify, timeout=10).close()


if __name__ == "__main__":
    main()

"""`regwatch tags` and `regwatch digest` as a person runs them: a subprocess, real registries."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from regwatch.net import Transport
from regwatch.refs import Repository
from regwatch.registry.client import RegistryClient
from regwatch.registry.credentials import StaticCredentials
from tests import images
from tests.e2e.steps import regwatch_command
from tests.registries import RegistryServer


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


def regwatch(*args: str, env: Mapping[str, str] | None = None) -> Run:
    """Run the installed console script (falling back to `python -m regwatch`)."""
    done = subprocess.run(
        [*regwatch_command(), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def assert_one_line_error(run: Run, *fragments: str) -> None:
    assert run.code == 1, run
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("regwatch: ")
    assert "Traceback" not in run.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(params=["plain", "tls", "token"])
def server(request: pytest.FixtureRequest) -> RegistryServer:
    registry: RegistryServer = request.getfixturevalue(f"{request.param}_registry")
    return registry


def seed(
    server: RegistryServer, tags: Mapping[str, images.Image | images.Index], prefix: str = "cli"
) -> str:
    """Push images under tags; returns the repository name to type on the command line."""
    credentials = (
        StaticCredentials(server.username, server.password or "") if server.username else None
    )
    client = RegistryClient(
        server.host, Transport(ca_certs=[server.ca_pem] if server.ca_pem else []), credentials
    )
    repo = Repository(server.host, f"{prefix}/{uuid.uuid4().hex[:10]}")
    for tag, item in tags.items():
        images.push(client, repo, tag, item)
    return str(repo)


def access_args(server: RegistryServer) -> list[str]:
    return ["--ca-cert", str(server.ca_path)] if server.ca_path else []


def access_env(server: RegistryServer) -> dict[str, str]:
    if not server.username:
        return {}
    return {"REGWATCH_USERNAME": server.username, "REGWATCH_PASSWORD": server.password or ""}


def test_tags_and_digest(server: RegistryServer) -> None:
    first, second = images.image("cli-1"), images.image("cli-2", docker=True)
    repo = seed(server, {"1.0": first, "2.0": second, "latest": second})
    env = access_env(server)

    tags = regwatch("tags", *access_args(server), repo, env=env)
    assert tags.code == 0, tags.stderr
    assert sorted(tags.stdout.splitlines()) == ["1.0", "2.0", "latest"]
    assert tags.stderr == ""

    digest = regwatch("digest", *access_args(server), f"{repo}:1.0", env=env)
    assert (digest.code, digest.stdout) == (0, f"{first.digest}\n"), digest.stderr
    latest = regwatch("digest", *access_args(server), repo, env=env)
    assert latest.stdout == f"{second.digest}\n", latest.stderr
    pinned = regwatch("digest", *access_args(server), f"{repo}@{second.digest}", env=env)
    assert pinned.stdout == f"{second.digest}\n", pinned.stderr


def test_credentials_from_flags(tls_registry: RegistryServer) -> None:
    repo = seed(tls_registry, {"v1": images.image("flags")})
    user, password = tls_registry.username or "", tls_registry.password or ""
    run = regwatch(
        "tags", "--username", user, "--password", password, *access_args(tls_registry), repo
    )
    assert (run.code, run.stdout) == (0, "v1\n"), run.stderr


def test_digest_of_an_index_is_the_index_digest(plain_registry: RegistryServer) -> None:
    multi = images.index(
        [images.image("x", architecture="amd64"), images.image("y", architecture="arm64")]
    )
    repo = seed(plain_registry, {"multi": multi})
    run = regwatch("digest", f"{repo}:multi")
    assert run.stdout == f"{multi.digest}\n", run.stderr


@pytest.mark.parametrize("kind", ["tls", "token"])
def test_wrong_password(request: pytest.FixtureRequest, kind: str) -> None:
    server: RegistryServer = request.getfixturevalue(f"{kind}_registry")
    secret = "wrong-" + uuid.uuid4().hex
    env = {"REGWATCH_USERNAME": server.username or "", "REGWATCH_PASSWORD": secret}
    run = regwatch("tags", *access_args(server), f"{server.host}/any/repo", env=env)
    assert_one_line_error(run, "401", "check username and password")
    assert secret not in run.stderr


@pytest.mark.parametrize("kind", ["tls", "token"])
def test_no_credentials_for_a_registry_that_needs_them(
    request: pytest.FixtureRequest, kind: str
) -> None:
    server: RegistryServer = request.getfixturevalue(f"{kind}_registry")
    run = regwatch("tags", *access_args(server), f"{server.host}/private/repo")
    assert_one_line_error(run, "401", "the registry needs a username and password")


def test_missing_ca(tls_registry: RegistryServer) -> None:
    run = regwatch("tags", f"{tls_registry.host}/any/repo", env=access_env(tls_registry))
    assert_one_line_error(run, "certificate verify failed", "ca_certs")


def test_unreadable_or_bad_ca_file(tls_registry: RegistryServer, tmp_path: Path) -> None:
    missing = regwatch("tags", "--ca-cert", str(tmp_path / "nope.pem"), f"{tls_registry.host}/a")
    assert_one_line_error(missing, "cannot read CA certificate", "no such file")
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    run = regwatch("tags", "--ca-cert", str(bad), f"{tls_registry.host}/a")
    assert_one_line_error(run, "ca_certs[0]")


@pytest.mark.parametrize("kind", ["zero-device", "fifo", "directory", "oversized", "binary"])
def test_a_ca_file_that_is_not_a_small_pem_file(
    tls_registry: RegistryServer, tmp_path: Path, kind: str
) -> None:
    """Refused at once in one line: never read forever, never blocked on a FIFO."""
    path = tmp_path / kind
    if kind == "zero-device":
        path = Path("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "oversized":
        pem = tls_registry.ca_path.read_text() if tls_registry.ca_path else ""
        path.write_text(pem * (2 * (1 << 20) // max(len(pem), 1) + 1))
    else:
        path.write_bytes(b"\xff\xfe" * 10)
    run = regwatch("tags", "--ca-cert", str(path), f"{tls_registry.host}/a")
    expected = {
        "zero-device": "not a regular file",
        "fifo": "not a regular file",
        "directory": "is a directory",
        "oversized": "larger than 1 MiB",
        "binary": "utf-8",
    }[kind]
    assert_one_line_error(run, f"cannot read CA certificate {path}", expected)


def test_unreachable_host() -> None:
    run = regwatch("tags", "127.0.0.1:9/some/repo")
    assert_one_line_error(run, "ping 127.0.0.1:9", "connection refused")


def test_unknown_repository(server: RegistryServer) -> None:
    run = regwatch(
        "tags", *access_args(server), f"{server.host}/no/such-repo", env=access_env(server)
    )
    assert_one_line_error(run, "no/such-repo", "NAME_UNKNOWN")


def test_unknown_tag(plain_registry: RegistryServer) -> None:
    repo = seed(plain_registry, {"v1": images.image("unknown-tag")})
    run = regwatch("digest", f"{repo}:v2")
    assert_one_line_error(run, f"{repo}:v2", "manifest unknown")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["tags", "Upper/Case"], "lowercase"),
        (["digest", "alpine:bad+tag"], "invalid tag"),
        (["digest", "alpine@sha256:short"], "invalid digest"),
    ],
)
def test_bad_references(args: list[str], fragment: str) -> None:
    assert_one_line_error(regwatch(*args), fragment)


def test_hostile_server_cannot_redirect_pagination(tmp_path: Path) -> None:
    """A registry whose `Link` points elsewhere: refused in one line, nothing sent there."""
    from tests.faults import FaultRegistry

    with FaultRegistry() as fault, FaultRegistry() as elsewhere:
        fault.paginate_to(f"http://{elsewhere.host}/v2/x/tags/list")
        run = regwatch("tags", f"{fault.host}/x")
        assert_one_line_error(run, "another host")
        assert elsewhere.seen == []

"""ECR sources through `check`, `in` and `out`: moto's ECR and STS, docker-registry as the registry.

moto answers `GetAuthorizationToken` with `AWS:<account>-auth-token` and the proxy endpoint
`https://<account>.dkr.ecr.<region>.amazonaws.com`; a TLS docker-registry with exactly that
htpasswd entry plays each account's registry, reached through `tests.cloud.ConnectProxy`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regwatch.config import parse_check_request
from regwatch.frontends.sources import CloudLogin, login_lookup, watch_spec
from regwatch.refs import Reference, Repository
from regwatch.registry.credentials import Credentials
from regwatch.registry.ecr import EcrLogin, EcrSettings
from regwatch.service import Service
from tests import images
from tests.cloud import ConnectProxy, MotoServer, start_moto
from tests.e2e.steps import assert_fails, client_for, step
from tests.e2e.test_watch import regwatch, rows, write_config
from tests.processes import free_port
from tests.registries import RegistryServer, require_tool, start_ecr_registry

REGION = "eu-west-1"
HOME_ACCOUNT = "123456789012"
OTHER_ACCOUNT = "222222222222"
KEY_ID = "AKIAREGWATCHTESTKEY1"
SECRET = "regwatch-test-secret-do-not-print"
SESSION = "regwatch-test-session-do-not-print"


def ecr_host(account: str) -> str:
    return f"{account}.dkr.ecr.{REGION}.amazonaws.com"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RegistryServer]]:
    """One registry per account: htpasswd holds one password per user, and both are `AWS`."""
    registry_bin, htpasswd_bin = require_tool("docker-registry"), require_tool("htpasswd")
    started: dict[str, RegistryServer] = {}
    try:
        for account in (HOME_ACCOUNT, OTHER_ACCOUNT):
            started[account] = start_ecr_registry(
                registry_bin,
                htpasswd_bin,
                tmp_path_factory.mktemp(f"ecr-{account}"),
                ecr_host(account),
                f"{account}-auth-token",
            )
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="module")
def proxy(registries: dict[str, RegistryServer]) -> Iterator[ConnectProxy]:
    routes = {
        ecr_host(account): int(server.host.rpartition(":")[2])
        for account, server in registries.items()
    }
    tunnel = ConnectProxy(routes).start()
    try:
        yield tunnel
    finally:
        tunnel.stop()


@pytest.fixture
def aws(
    monkeypatch: pytest.MonkeyPatch, moto: MotoServer, proxy: ConnectProxy, tmp_path: Path
) -> None:
    """moto for ECR and STS, the proxy for the registries, and no ambient AWS configuration."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", moto.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto.url)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def seeded(server: RegistryServer, name: str, tag: str) -> images.Image:
    item = images.image(f"{name}-{tag}")
    images.push(client_for(server), Repository(server.host, name), tag, item)
    return item


def source(server: RegistryServer, repository: str, **extra: Any) -> dict[str, Any]:
    return {
        "repository": repository,
        "aws_region": REGION,
        "ca_certs": [server.ca_pem],
        **extra,
    }


STATIC_KEYS = {
    "aws_access_key_id": KEY_ID,
    "aws_secret_access_key": SECRET,
    "aws_session_token": SESSION,
}


def assert_no_secret(stderr: str) -> None:
    for secret in (SECRET, SESSION, "auth-token"):
        assert secret not in stderr


@pytest.mark.usefixtures("aws")
def test_static_keys_check_in_out(
    registries: dict[str, RegistryServer], proxy: ConnectProxy, tmp_path: Path
) -> None:
    home = registries[HOME_ACCOUNT]
    item = seeded(home, "team/app", "1.0.0")
    ecr_source = source(home, "team/app", **STATIC_KEYS)

    checked = step("check", {"source": {**ecr_source, "tag": "1.0.0"}})
    assert checked.code == 0, checked.stderr
    assert checked.answer == [{"tag": "1.0.0", "digest": item.digest}]
    assert ecr_host(HOME_ACCOUNT) in proxy.tunnels

    got = step(
        "in",
        {"source": ecr_source, "version": {"tag": "1.0.0", "digest": item.digest}},
        tmp_path / "got",
    )
    assert got.code == 0, got.stderr
    rewritten = f"{ecr_host(HOME_ACCOUNT)}/team/app"
    assert (tmp_path / "got/repository").read_text() == rewritten
    assert {"name": "repository", "value": rewritten} in got.answer["metadata"]
    assert (tmp_path / "got/digest").read_text() == item.digest

    layout = images.write_oci_layout(tmp_path / "put/img", "v", images.image("pushed"))
    put = step(
        "out",
        {
            "source": source(home, "team/pushed", **STATIC_KEYS, tag="latest"),
            "params": {"image": "img"},
        },
        tmp_path / "put",
    )
    assert put.code == 0, put.stderr
    repo = Repository(home.host, "team/pushed")
    descriptor = client_for(home).resolve(Reference(repo, tag="latest"))
    assert descriptor is not None
    assert put.answer["version"] == {"tag": "latest", "digest": descriptor.digest}
    assert layout.exists()
    for run in (checked, got, put):
        assert_no_secret(run.stderr)


@pytest.mark.usefixtures("aws")
def test_a_role_chain_into_another_account(
    registries: dict[str, RegistryServer], tmp_path: Path
) -> None:
    """The last role's account owns the token: its password and its registry are the ones used."""
    other = registries[OTHER_ACCOUNT]
    item = seeded(other, "chained", "2.0.0")
    chained = source(
        other,
        "chained",
        **STATIC_KEYS,
        aws_role_arns=[
            f"arn:aws:iam::{HOME_ACCOUNT}:role/first-hop",
            f"arn:aws:iam::{OTHER_ACCOUNT}:role/ecr-reader",
        ],
    )

    checked = step("check", {"source": chained})
    assert checked.code == 0, checked.stderr
    assert checked.answer == [{"tag": "2.0.0", "digest": item.digest}]

    got = step(
        "in",
        {"source": chained, "version": {"tag": "2.0.0", "digest": item.digest}},
        tmp_path / "got",
    )
    assert got.code == 0, got.stderr
    assert (tmp_path / "got/repository").read_text() == f"{ecr_host(OTHER_ACCOUNT)}/chained"

    (tmp_path / "put").mkdir()
    images.write_oci_layout(tmp_path / "put/img", "v", images.image("chained-put"))
    put = step(
        "out",
        {"source": {**chained, "tag": "edge"}, "params": {"image": "img"}},
        tmp_path / "put",
    )
    assert put.code == 0, put.stderr
    assert client_for(other).resolve(Reference(Repository(other.host, "chained"), tag="edge"))


@pytest.mark.usefixtures("aws")
def test_one_role_account_id_and_the_deprecated_registry_id(
    registries: dict[str, RegistryServer],
) -> None:
    other = registries[OTHER_ACCOUNT]
    item = seeded(other, "by-account", "3.0.0")
    run = step(
        "check",
        {
            "source": source(
                other,
                "by-account",
                **STATIC_KEYS,
                aws_role_arn=f"arn:aws:iam::{OTHER_ACCOUNT}:role/ecr-reader",
                aws_account_id=OTHER_ACCOUNT,
                aws_ecr_registry_id="ignored",
            )
        },
    )
    assert run.code == 0, run.stderr
    assert run.answer == [{"tag": "3.0.0", "digest": item.digest}]
    assert "aws_ecr_registry_id is deprecated" in run.stderr


@pytest.mark.usefixtures("aws")
def test_the_default_chain_reads_the_environment(
    registries: dict[str, RegistryServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = registries[HOME_ACCOUNT]
    item = seeded(home, "from-env", "1.0.0")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    run = step("check", {"source": source(home, "from-env")})
    assert run.code == 0, run.stderr
    assert run.answer == [{"tag": "1.0.0", "digest": item.digest}]


@pytest.mark.usefixtures("aws")
@pytest.mark.parametrize("name", ["check", "in", "out"])
def test_both_role_fields_is_an_error(
    registries: dict[str, RegistryServer], name: str, tmp_path: Path
) -> None:
    arn = f"arn:aws:iam::{HOME_ACCOUNT}:role/a-role"
    request: dict[str, Any] = {
        "source": source(
            registries[HOME_ACCOUNT], "app", **STATIC_KEYS, aws_role_arn=arn, aws_role_arns=[arn]
        ),
        **{
            "check": {},
            "in": {"version": {"tag": "1", "digest": "sha256:" + "0" * 64}},
            "out": {"params": {"image": "img"}},
        }[name],
    }
    run = step(name, request, None if name == "check" else tmp_path)
    assert_fails(
        run,
        "cannot authenticate with ECR",
        "`aws_role_arn` cannot be set at the same time as `aws_role_arns`",
    )


@pytest.mark.usefixtures("aws")
def test_no_credentials_at_all(registries: dict[str, RegistryServer]) -> None:
    run = step("check", {"source": source(registries[HOME_ACCOUNT], "app")})
    assert_fails(
        run,
        "cannot authenticate with ECR: failed to authenticate to ECR:",
        "Unable to locate credentials",
    )


@pytest.mark.usefixtures("aws")
def test_half_a_key_pair_is_no_credentials(registries: dict[str, RegistryServer]) -> None:
    """Static keys count only as a pair (as in the Go resource); the chain has nothing either."""
    run = step(
        "check",
        {"source": source(registries[HOME_ACCOUNT], "app", aws_secret_access_key=SECRET)},
    )
    assert_fails(run, "cannot authenticate with ECR: failed to authenticate to ECR:")
    assert_no_secret(run.stderr)


@pytest.mark.usefixtures("aws")
def test_a_role_that_cannot_be_assumed(
    registries: dict[str, RegistryServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    arn = f"arn:aws:iam::{OTHER_ACCOUNT}:role/unreachable"
    run = step(
        "check",
        {"source": source(registries[HOME_ACCOUNT], "app", **STATIC_KEYS, aws_role_arn=arn)},
    )
    assert_fails(
        run, f"cannot authenticate with ECR: error assuming role '{arn}':", "Could not connect"
    )
    assert_no_secret(run.stderr)


@pytest.mark.usefixtures("aws")
def test_a_malformed_role_is_refused_before_sending(
    registries: dict[str, RegistryServer],
) -> None:
    run = step(
        "check",
        {"source": source(registries[HOME_ACCOUNT], "app", **STATIC_KEYS, aws_role_arn="admin")},
    )
    assert_fails(run, "cannot authenticate with ECR: error assuming role 'admin':", "RoleArn")


@pytest.mark.usefixtures("aws")
def test_ecr_down_is_one_line(
    registries: dict[str, RegistryServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    run = step("check", {"source": source(registries[HOME_ACCOUNT], "app", **STATIC_KEYS)})
    assert_fails(
        run, "cannot authenticate with ECR: failed to authenticate to ECR:", "Could not connect"
    )
    assert_no_secret(run.stderr)


@pytest.mark.usefixtures("aws")
def test_the_daemon_watches_ecr_sources(
    registries: dict[str, RegistryServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`watches[].source` takes the same fields; the one with `aws_account_id` logs in at its
    first poll, the other at start (only the token names its registry)."""
    home, other = registries[HOME_ACCOUNT], registries[OTHER_ACCOUNT]
    first = seeded(home, "watched", "1.0.0")
    second = seeded(other, "watched-too", "1.0.0")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    store = tmp_path / "trail.db"
    watches = [
        {"name": "home", "source": source(home, "watched"), "every": "1h"},
        {
            "name": "other",
            "source": source(
                other,
                "watched-too",
                aws_role_arn=f"arn:aws:iam::{OTHER_ACCOUNT}:role/ecr-reader",
                aws_account_id=OTHER_ACCOUNT,
            ),
            "every": "1h",
        },
    ]
    config = write_config(tmp_path / "config.yaml", store, watches)

    done = regwatch("watch", "--config", str(config), "--once")

    assert done.returncode == 0, done.stderr
    appeared = {(s, p["tag"], p["digest"]) for s, _, k, p in rows(store) if k == "TagAppeared"}
    assert any(ecr_host(HOME_ACCOUNT) in s and d == first.digest for s, _, d in appeared), appeared
    assert any(ecr_host(OTHER_ACCOUNT) in s and d == second.digest for s, _, d in appeared)
    assert_no_secret(done.stderr)


class ExpiringLogin(EcrLogin):
    """An ECR login whose cached token the test can let die, as a 12 h token does between two
    polls of a daemon; it counts the new tokens it fetches."""

    expired = False
    renewals = 0

    def current(self) -> Credentials:
        got = super().current()
        return Credentials(got.username, "expired-token") if self.expired else got

    def refresh(self) -> bool:
        self.expired = False
        self.renewals += 1
        return super().refresh()


@pytest.mark.usefixtures("aws")
def test_a_token_refused_mid_poll_is_renewed_once_and_the_request_retried(
    registries: dict[str, RegistryServer],
) -> None:
    home = registries[HOME_ACCOUNT]
    item = seeded(home, "renewed", "1.0.0")
    request = parse_check_request(
        json.dumps({"source": source(home, "renewed", tag="1.0.0", **STATIC_KEYS)})
    )
    login = ExpiringLogin(EcrSettings(REGION, KEY_ID, SECRET, SESSION, account_id=HOME_ACCOUNT))
    cloud = CloudLogin(f"{ecr_host(HOME_ACCOUNT)}/renewed", ecr_host(HOME_ACCOUNT), login)
    spec = watch_spec(request.source, unresolved="unresolved", login=cloud)
    statuses: list[int] = []

    with Service(
        credentials=login_lookup([cloud]), on_answer=lambda _, status: statuses.append(status)
    ) as service:
        first = service.poll(spec)
        login.expired = True
        statuses.clear()
        second = service.poll(spec)

    assert first.state.tags == second.state.tags == {"1.0.0": item.digest}
    assert statuses.count(401) == 1, statuses
    assert login.renewals == 1
    assert statuses[-1] == 200

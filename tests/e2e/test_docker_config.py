"""`regwatch tags` and `regwatch digest` with credentials from the Docker config (issue 10).

Against the real registries: htpasswd Basic ("tls") and Bearer tokens ("token"). Credential
helpers are small shell scripts written here and put on PATH; each logs the server URL it was
asked about, so a test can tell whether (and how often) a helper ran.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import images
from tests.e2e.steps import step
from tests.e2e.test_cli import Run, access_args, assert_one_line_error, regwatch, seed
from tests.registries import RegistryServer
from tests.tokenservice import Scope, TokenService


@dataclass(frozen=True)
class Docker:
    """A Docker config directory and a directory of helpers, and the environment naming both."""

    config_dir: Path
    bin_dir: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            "DOCKER_CONFIG": str(self.config_dir),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ['PATH']}",
        }

    def write(self, document: Mapping[str, object]) -> None:
        (self.config_dir / "config.json").write_text(json.dumps(document))

    def helper(self, name: str, body: str) -> Path:
        """A `docker-credential-NAME` running `body` after logging the server URL to NAME.log."""
        path = self.bin_dir / f"docker-credential-{name}"
        log = self.bin_dir / f"{name}.log"
        path.write_text(
            f'#!/bin/sh\n[ "$1" = get ] || exit 2\nread -r url\necho "$url" >> {log}\n' + body
        )
        path.chmod(0o755)
        return path

    def answering(self, name: str, host: str, username: str, secret: str) -> Path:
        """A helper holding one entry: `host`'s credentials; anything else is not found."""
        answer = json.dumps({"ServerURL": host, "Username": username, "Secret": secret})
        return self.helper(
            name,
            f"if [ \"$url\" = \"{host}\" ]; then printf '%s' '{answer}'; exit 0; fi\n"
            "echo 'credentials not found in native keychain'\n"
            "exit 1\n",
        )

    def asked(self, name: str) -> list[str]:
        log = self.bin_dir / f"{name}.log"
        return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def docker(tmp_path: Path) -> Docker:
    config_dir, bin_dir = tmp_path / "docker", tmp_path / "bin"
    config_dir.mkdir()
    bin_dir.mkdir()
    return Docker(config_dir, bin_dir)


@pytest.fixture(params=["tls", "token"])
def server(request: pytest.FixtureRequest) -> RegistryServer:
    registry: RegistryServer = request.getfixturevalue(f"{request.param}_registry")
    return registry


@pytest.fixture
def token_service(token_registry: RegistryServer) -> Iterator[TokenService]:
    service = token_registry.token_service
    assert service is not None
    service.reset()
    yield service
    service.reset()


def auth_entry(username: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}


def pair(server: RegistryServer) -> tuple[str, str]:
    return server.username or "", server.password or ""


def tags(server: RegistryServer, repo: str, env: Mapping[str, str], *extra: str) -> Run:
    return regwatch(*extra, "tags", *access_args(server), repo, env=env)


def assert_listed(run: Run, *expected: str) -> None:
    assert (run.code, run.stdout) == (0, "".join(f"{tag}\n" for tag in expected)), run.stderr


def test_auths_let_tags_and_digest_work_without_a_username(
    server: RegistryServer, docker: Docker
) -> None:
    image = images.image("dc-auths")
    repo = seed(server, {"v1": image}, prefix="dockerconfig")
    docker.write({"auths": {server.host: auth_entry(*pair(server))}})

    assert_listed(tags(server, repo, docker.env), "v1")
    digest = regwatch("digest", *access_args(server), f"{repo}:v1", env=docker.env)
    assert (digest.code, digest.stdout) == (0, f"{image.digest}\n"), digest.stderr


def test_without_the_config_the_same_command_is_anonymous(
    tls_registry: RegistryServer, docker: Docker
) -> None:
    repo = seed(tls_registry, {"v1": images.image("dc-none")}, prefix="dockerconfig")
    assert_one_line_error(
        tags(tls_registry, repo, docker.env), "401", "the registry needs a username and password"
    )


@pytest.mark.parametrize("form", ["https://{host}", "https://{host}/v2/", "http://{host}/"])
def test_an_auths_key_written_as_a_url_counts_for_its_host(
    tls_registry: RegistryServer, docker: Docker, form: str
) -> None:
    repo = seed(tls_registry, {"v1": images.image("dc-url")}, prefix="dockerconfig")
    docker.write({"auths": {form.format(host=tls_registry.host): auth_entry(*pair(tls_registry))}})
    assert_listed(tags(tls_registry, repo, docker.env), "v1")


def test_the_config_under_home_when_docker_config_is_unset(
    tls_registry: RegistryServer, tmp_path: Path
) -> None:
    repo = seed(tls_registry, {"v1": images.image("dc-home")}, prefix="dockerconfig")
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    config = {"auths": {tls_registry.host: auth_entry(*pair(tls_registry))}}
    (home / ".docker" / "config.json").write_text(json.dumps(config))
    assert_listed(tags(tls_registry, repo, {"HOME": str(home)}), "v1")


def test_docker_config_wins_over_home(
    tls_registry: RegistryServer, docker: Docker, tmp_path: Path
) -> None:
    repo = seed(tls_registry, {"v1": images.image("dc-env")}, prefix="dockerconfig")
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    wrong = {"auths": {tls_registry.host: auth_entry("alice", "wrong")}}
    (home / ".docker" / "config.json").write_text(json.dumps(wrong))
    docker.write({"auths": {tls_registry.host: auth_entry(*pair(tls_registry))}})
    assert_listed(tags(tls_registry, repo, {**docker.env, "HOME": str(home)}), "v1")


def test_a_cred_helper_answers_for_its_registry(server: RegistryServer, docker: Docker) -> None:
    image = images.image("dc-helper")
    repo = seed(server, {"v1": image}, prefix="dockerconfig")
    docker.answering("test", server.host, *pair(server))
    docker.write({"credHelpers": {server.host: "test"}})

    assert_listed(tags(server, repo, docker.env), "v1")
    digest = regwatch("digest", *access_args(server), f"{repo}:v1", env=docker.env)
    assert digest.stdout == f"{image.digest}\n", digest.stderr
    assert docker.asked("test") == [server.host, server.host]  # once per command


def test_the_creds_store_answers_without_a_cred_helper(
    server: RegistryServer, docker: Docker
) -> None:
    repo = seed(server, {"v1": images.image("dc-store")}, prefix="dockerconfig")
    docker.answering("store", server.host, *pair(server))
    docker.write({"credsStore": "store", "auths": {server.host: {}}})
    assert_listed(tags(server, repo, docker.env), "v1")
    assert docker.asked("store") == [server.host]


def test_a_helper_token_username_means_an_identity_token(
    token_registry: RegistryServer, token_service: TokenService, docker: Docker
) -> None:
    repo = seed(token_registry, {"v1": images.image("dc-identity")}, prefix="dockerconfig")
    token_service.reset()  # forget the pushes
    identity = token_service.refresh_token_for("bob")
    docker.answering("acr", token_registry.host, "<token>", identity)
    docker.write({"credHelpers": {token_registry.host: "acr"}})

    run = tags(token_registry, repo, docker.env, "--debug")
    assert_listed(run, "v1")
    grants = [seen.grant_type for seen in token_service.requests_seen if seen.method == "POST"]
    assert grants == ["refresh_token"]
    assert identity not in run.stderr


def test_an_identity_token_in_auths_gets_tokens_by_post(
    token_registry: RegistryServer, token_service: TokenService, docker: Docker
) -> None:
    repo = seed(token_registry, {"v1": images.image("dc-idtoken")}, prefix="dockerconfig")
    token_service.reset()  # forget the pushes
    identity = token_service.refresh_token_for("bob")
    docker.write({"auths": {token_registry.host: {"identitytoken": identity}}})
    assert_listed(tags(token_registry, repo, docker.env), "v1")
    assert [seen.method for seen in token_service.requests_seen] == ["POST"]


def test_a_registry_token_is_sent_as_is(
    token_registry: RegistryServer, token_service: TokenService, docker: Docker
) -> None:
    repo = seed(token_registry, {"v1": images.image("dc-regtoken")}, prefix="dockerconfig")
    path = repo.split("/", 1)[1]
    bearer = token_service.issue("bob", [Scope("repository", path, ("pull",))])["token"]
    docker.write({"auths": {token_registry.host: {"registrytoken": bearer}}})
    token_service.reset()

    run = tags(token_registry, repo, docker.env, "--debug")
    assert_listed(run, "v1")
    assert token_service.requests_seen == []  # no token was asked for
    assert bearer not in run.stderr


def test_a_refused_registry_token_is_one_line_without_it(
    token_registry: RegistryServer, token_service: TokenService, docker: Docker
) -> None:
    repo = seed(token_registry, {"v1": images.image("dc-regtoken-no")}, prefix="dockerconfig")
    elsewhere = [Scope("repository", "dockerconfig/another", ("pull",))]
    bearer = token_service.issue("bob", elsewhere)["token"]
    docker.write({"auths": {token_registry.host: {"registrytoken": bearer}}})
    run = tags(token_registry, repo, docker.env, "--debug")
    assert run.code == 1, run
    assert run.stderr.splitlines()[-1].startswith("regwatch: list tags of ")
    assert "401" in run.stderr.splitlines()[-1]
    assert bearer not in run.stderr


# -- precedence ----------------------------------------------------------------------------------


def test_the_sources_own_pair_wins_and_no_helper_runs(
    tls_registry: RegistryServer, docker: Docker
) -> None:
    repo = seed(tls_registry, {"v1": images.image("dc-pair")}, prefix="dockerconfig")
    docker.helper("broken", "exit 1\n")
    docker.write(
        {
            "credHelpers": {tls_registry.host: "broken"},
            "auths": {tls_registry.host: auth_entry("alice", "wrong")},
        }
    )
    user, password = pair(tls_registry)
    run = regwatch(
        "tags",
        "--username",
        user,
        "--password",
        password,
        *access_args(tls_registry),
        repo,
        env=docker.env,
    )
    assert_listed(run, "v1")
    assert docker.asked("broken") == []


def test_cred_helpers_win_over_creds_store_and_auths(
    tls_registry: RegistryServer, docker: Docker
) -> None:
    repo = seed(tls_registry, {"v1": images.image("dc-order")}, prefix="dockerconfig")
    docker.answering("right", tls_registry.host, *pair(tls_registry))
    docker.helper("store", "exit 1\n")
    docker.write(
        {
            "credHelpers": {"other.example:5000": "store", tls_registry.host: "right"},
            "credsStore": "store",
            "auths": {tls_registry.host: auth_entry("alice", "wrong")},
        }
    )
    assert_listed(tags(tls_registry, repo, docker.env), "v1")
    assert docker.asked("store") == []


def test_the_creds_store_wins_over_auths(tls_registry: RegistryServer, docker: Docker) -> None:
    repo = seed(tls_registry, {"v1": images.image("dc-store-order")}, prefix="dockerconfig")
    docker.answering("store", tls_registry.host, *pair(tls_registry))
    docker.write(
        {"credsStore": "store", "auths": {tls_registry.host: auth_entry("alice", "wrong")}}
    )
    assert_listed(tags(tls_registry, repo, docker.env), "v1")


def test_a_helper_without_credentials_means_anonymous_even_beside_auths(
    tls_registry: RegistryServer, docker: Docker
) -> None:
    repo = seed(tls_registry, {"v1": images.image("dc-notfound")}, prefix="dockerconfig")
    docker.answering("store", "elsewhere.example", "u", "p")
    docker.write(
        {"credsStore": "store", "auths": {tls_registry.host: auth_entry(*pair(tls_registry))}}
    )
    run = tags(tls_registry, repo, docker.env)
    assert_one_line_error(run, "401", "the registry needs a username and password")
    assert docker.asked("store") == [tls_registry.host]


def test_a_helper_for_another_registry_does_not_apply(
    tls_registry: RegistryServer, docker: Docker
) -> None:
    repo = seed(tls_registry, {"v1": images.image("dc-other")}, prefix="dockerconfig")
    docker.helper("broken", "exit 1\n")
    docker.write(
        {
            "credHelpers": {"127.0.0.1:1": "broken", "https://ghcr.io": "broken"},
            "auths": {tls_registry.host: auth_entry(*pair(tls_registry))},
        }
    )
    assert_listed(tags(tls_registry, repo, docker.env), "v1")
    assert docker.asked("broken") == []


# -- renewal and failures ------------------------------------------------------------------------


def test_a_refused_secret_makes_the_helper_asked_again(
    server: RegistryServer, docker: Docker
) -> None:
    """The helper rotated the secret after we read it: the 401 asks it once more."""
    repo = seed(server, {"v1": images.image("dc-rotate")}, prefix="dockerconfig")
    user, password = pair(server)
    log = docker.bin_dir / "rotating.log"
    stale = json.dumps({"ServerURL": server.host, "Username": user, "Secret": "stale"})
    fresh = json.dumps({"ServerURL": server.host, "Username": user, "Secret": password})
    docker.helper(
        "rotating",
        f"if [ \"$(wc -l < {log} | tr -d \" \")\" -le 1 ]; then printf '%s' '{stale}'; "
        f"else printf '%s' '{fresh}'; fi\n",
    )
    docker.write({"credHelpers": {server.host: "rotating"}})
    run = tags(server, repo, docker.env, "--debug")
    assert_listed(run, "v1")
    assert docker.asked("rotating") == [server.host, server.host]
    assert password not in run.stderr


def test_a_failing_helper_is_one_line_naming_it(
    tls_registry: RegistryServer, docker: Docker
) -> None:
    repo = seed(tls_registry, {"v1": images.image("dc-fails")}, prefix="dockerconfig")
    secret = uuid.uuid4().hex
    docker.helper(
        "broken",
        f'printf \'{{"Username": "u", "Secret": "{secret}"}}\'\n'
        "echo 'the keychain is locked' >&2\n"
        f"echo 'second line {secret}' >&2\n"
        "exit 3\n",
    )
    docker.write({"credHelpers": {tls_registry.host: "broken"}})
    for command in (["tags", repo], ["digest", f"{repo}:v1"]):
        run = regwatch(command[0], *access_args(tls_registry), command[1], env=docker.env)
        assert_one_line_error(
            run,
            f"credentials for {tls_registry.host}: docker-credential-broken get exited with "
            "status 3: the keychain is locked",
        )
        assert secret not in run.stderr


def test_a_helper_reporting_on_stdout_is_quoted(
    tls_registry: RegistryServer, docker: Docker
) -> None:
    """Docker's own helpers write their errors on stdout."""
    repo = seed(tls_registry, {"v1": images.image("dc-stdout")}, prefix="dockerconfig")
    docker.helper("pass", "echo 'error getting credentials - gpg: decryption failed'\nexit 1\n")
    docker.write({"credsStore": "pass"})
    assert_one_line_error(
        tags(tls_registry, repo, docker.env),
        "docker-credential-pass get exited with status 1: error getting credentials - gpg",
    )


def test_a_helper_that_is_not_installed_is_one_line(
    tls_registry: RegistryServer, docker: Docker
) -> None:
    repo = seed(tls_registry, {"v1": images.image("dc-missing")}, prefix="dockerconfig")
    docker.write({"credHelpers": {tls_registry.host: "nowhere"}})
    assert_one_line_error(
        tags(tls_registry, repo, docker.env),
        "docker-credential-nowhere",
        "is not on PATH",
        str(docker.config_dir / "config.json"),
    )


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def test_a_hanging_helper_is_cut_by_the_timeout_with_what_it_started(
    tls_registry: RegistryServer, docker: Docker
) -> None:
    repo = seed(tls_registry, {"v1": images.image("dc-hangs")}, prefix="dockerconfig")
    pids = docker.bin_dir / "sleeper.pid"
    docker.helper("hangs", f"sleep 300 &\necho $! > {pids}\nwait\n")
    docker.write({"credHelpers": {tls_registry.host: "hangs"}})
    started = time.monotonic()
    run = tags(tls_registry, repo, {**docker.env, "REGWATCH_REQUEST_TIMEOUT_SECONDS": "1"})
    assert time.monotonic() - started < 20
    assert_one_line_error(run, "docker-credential-hangs get gave no answer within 1 s")
    sleeper = int(pids.read_text())
    deadline = time.monotonic() + 5
    while _alive(sleeper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(sleeper)


def test_a_malformed_config_is_one_line_naming_it(
    tls_registry: RegistryServer, docker: Docker
) -> None:
    repo = seed(tls_registry, {"v1": images.image("dc-malformed")}, prefix="dockerconfig")
    (docker.config_dir / "config.json").write_text('{"auths": {')
    assert_one_line_error(
        tags(tls_registry, repo, docker.env),
        f"docker config {docker.config_dir / 'config.json'} is not valid JSON",
    )


def test_nothing_secret_reaches_stderr_with_debug(server: RegistryServer, docker: Docker) -> None:
    repo = seed(server, {"v1": images.image("dc-debug")}, prefix="dockerconfig")
    user, password = pair(server)
    entry = auth_entry(user, password)
    docker.write({"auths": {server.host: entry}})
    run = tags(server, repo, docker.env, "--debug")
    assert_listed(run, "v1")
    assert run.stderr  # --debug did say things
    for secret in (password, entry["auth"]):
        assert secret not in run.stderr

    docker.answering("test", server.host, user, password)
    docker.write({"credHelpers": {server.host: "test"}})
    run = regwatch("--debug", "digest", *access_args(server), f"{repo}:v1", env=docker.env)
    assert run.code == 0, run.stderr
    assert "docker-credential-test" in run.stderr
    assert password not in run.stderr


def test_the_concourse_steps_do_not_read_the_docker_config(
    tls_registry: RegistryServer, docker: Docker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Go resource knows only its source's pair; so does `check`."""
    repo = seed(tls_registry, {"v1": images.image("dc-concourse")}, prefix="dockerconfig")
    docker.write({"auths": {tls_registry.host: auth_entry(*pair(tls_registry))}})
    monkeypatch.setenv("DOCKER_CONFIG", str(docker.config_dir))
    source = {"repository": repo, "tag": "v1", "ca_certs": [tls_registry.ca_pem]}
    run = step("check", {"source": source})
    assert run.code == 1, run
    assert "401" in run.stderr

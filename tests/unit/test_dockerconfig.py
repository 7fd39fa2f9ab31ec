"""The Docker config's pure parts: which key stands for a registry, where the file is, what an
`auths` entry means, and when the file is read. Helpers and real registries are in
tests/e2e/test_docker_config.py.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from regwatch.errors import AuthFailed, ConfigError
from regwatch.refs import DOCKER_HUB
from regwatch.registry.credentials import Credentials
from regwatch.registry.dockerconfig import (
    HUB_KEY,
    DockerCredentials,
    Helper,
    config_path,
    docker_credentials,
    hostname,
    matching_key,
    read_config,
    server_url,
)

HOST = "127.0.0.1:5000"


@pytest.mark.parametrize(
    ("keys", "registry", "expected"),
    [
        ([HOST], HOST, HOST),
        (["https://127.0.0.1:5000"], HOST, "https://127.0.0.1:5000"),
        (["https://127.0.0.1:5000/v2/"], HOST, "https://127.0.0.1:5000/v2/"),
        (["http://127.0.0.1:5000/"], HOST, "http://127.0.0.1:5000/"),
        (["registry.example.com/v1/"], "registry.example.com", "registry.example.com/v1/"),
        (["GHCR.io"], "ghcr.io", "GHCR.io"),
        (["https://ghcr.io", "ghcr.io"], "ghcr.io", "ghcr.io"),
        (["127.0.0.1:5001"], HOST, None),
        (["127.0.0.1"], HOST, None),
        (["ghcr.io.attacker.example"], "ghcr.io", None),
        (["https://attacker.example/ghcr.io"], "ghcr.io", None),
        ([HUB_KEY], DOCKER_HUB, HUB_KEY),
        (["docker.io", HUB_KEY], DOCKER_HUB, HUB_KEY),
        (["docker.io"], DOCKER_HUB, "docker.io"),
        (["index.docker.io"], DOCKER_HUB, "index.docker.io"),
        (["https://registry-1.docker.io/v2/"], DOCKER_HUB, "https://registry-1.docker.io/v2/"),
        ([HUB_KEY], "registry.example.com", None),
    ],
)
def test_the_key_of_a_registry(keys: list[str], registry: str, expected: str | None) -> None:
    assert matching_key(keys, registry) == expected


@pytest.mark.parametrize(
    ("key", "host"),
    [
        ("ghcr.io", "ghcr.io"),
        ("https://ghcr.io/v2/", "ghcr.io"),
        ("http://localhost:5000", "localhost:5000"),
        ("Quay.IO/some/path", "quay.io"),
        (HUB_KEY, "index.docker.io"),
    ],
)
def test_a_key_written_as_a_url_counts_for_its_host(key: str, host: str) -> None:
    assert hostname(key) == host


def test_docker_hub_is_asked_for_by_its_server_url() -> None:
    assert server_url(DOCKER_HUB) == "https://index.docker.io/v1/"
    assert server_url(HOST) == HOST


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"DOCKER_CONFIG": "/etc/dc", "HOME": "/home/u"}, "/etc/dc/config.json"),
        ({"DOCKER_CONFIG": "", "HOME": "/home/u"}, "/home/u/.docker/config.json"),
        ({"HOME": "/home/u"}, "/home/u/.docker/config.json"),
    ],
)
def test_where_the_config_is(environ: dict[str, str], expected: str) -> None:
    assert config_path(environ) == Path(expected)


def test_without_home_the_users_own_home_is_used() -> None:
    found = config_path({})
    assert found is not None
    assert found.name == "config.json"
    assert found.parent.name == ".docker"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _config(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"auth": _b64("alice:pa:ss")}, Credentials("alice", "pa:ss")),
        ({"username": "bob", "password": "pw"}, Credentials("bob", "pw")),
        (
            {"auth": _b64("alice:pw"), "identitytoken": "rt"},
            Credentials("alice", "pw", identity_token="rt"),
        ),
        ({"identitytoken": "rt"}, Credentials(identity_token="rt")),
        ({"registrytoken": "bt"}, Credentials(registry_token="bt")),
        ({}, None),
        ({"auth": ""}, None),
        ({"username": "bob"}, None),
    ],
)
def test_an_auths_entry(tmp_path: Path, entry: dict[str, str], expected: Credentials) -> None:
    config = read_config(_config(tmp_path, {"auths": {HOST: entry}}))
    assert config is not None
    assert config.auth_for(HOST) == expected


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"auths": {HOST: {"auth": "not base64!"}}}, "auths['127.0.0.1:5000'].auth is not base64"),
        ({"auths": {HOST: {"auth": _b64("no-colon")}}}, "auth is not user:password"),
        ({"auths": {HOST: {"auth": 7}}}, "auths['127.0.0.1:5000'].auth must be a string"),
    ],
)
def test_a_bad_entry_is_one_line_without_its_value(
    tmp_path: Path, document: object, fragment: str
) -> None:
    path = _config(tmp_path, document)
    config = read_config(path)
    assert config is not None
    with pytest.raises(ConfigError) as caught:
        config.auth_for(HOST)
    assert fragment in str(caught.value)
    assert str(path) in str(caught.value)
    assert "no-colon" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "is not valid JSON"),
        ("[]", "expected a JSON object"),
        ('{"auths": []}', "auths must be an object"),
        ('{"auths": {"h": "x"}}', "auths['h'] must be an object"),
        ('{"credHelpers": {"h": 1}}', "credHelpers['h'] must be a string"),
        ('{"credsStore": {}}', "credsStore must be a string"),
        ("\xff", "is not valid JSON"),
    ],
)
def test_a_malformed_config_is_one_line_naming_the_file(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        read_config(path)
    message = str(caught.value)
    assert fragment in message
    assert str(path) in message
    assert "\n" not in message


def test_a_config_is_read_within_a_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b"{" + b" " * (4 << 20) + b"}")
    with pytest.raises(ConfigError, match="is larger than 4 MiB"):
        read_config(path)


def test_no_config_file_means_nothing_to_say(tmp_path: Path) -> None:
    assert read_config(tmp_path / "absent.json") is None


def test_a_fifo_or_directory_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        read_config(fifo)
    with pytest.raises(ConfigError, match="cannot read docker config"):
        read_config(tmp_path)


def test_the_config_is_read_when_first_needed_and_again_on_refresh(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    source = DockerCredentials(HOST, path, {}, timeout=5)
    _config(tmp_path, {"auths": {HOST: {"auth": _b64("alice:one")}}})  # after the source exists
    assert source.current() == Credentials("alice", "one")
    _config(tmp_path, {"auths": {HOST: {"auth": _b64("alice:two")}}})
    assert source.current() == Credentials("alice", "one")  # kept until a refusal
    assert source.refresh() is True
    assert source.current() == Credentials("alice", "two")
    assert source.refresh() is False  # nothing new to offer


def test_a_bad_config_fails_on_use_and_is_not_remembered(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{")
    lookup = docker_credentials({"DOCKER_CONFIG": str(tmp_path)}, 5)
    source = lookup(HOST)
    assert source is not None
    with pytest.raises(ConfigError):
        source.current()
    _config(tmp_path, {"auths": {HOST: {"auth": _b64("alice:pw")}}})
    assert source.current() == Credentials("alice", "pw")


def test_a_source_shows_no_secret(tmp_path: Path) -> None:
    _config(tmp_path, {"auths": {HOST: {"auth": _b64("alice:s3cret"), "registrytoken": "t0k"}}})
    source = DockerCredentials(HOST, tmp_path / "config.json", {}, timeout=5)
    shown = repr(source.current())
    assert "s3cret" not in shown
    assert "t0k" not in shown


def _helper(tmp_path: Path, body: str) -> dict[str, str]:
    """A `docker-credential-echo` in tmp_path; the environment that finds it."""
    path = tmp_path / "docker-credential-echo"
    path.write_text("#!/bin/sh\nread -r url\n" + body)
    path.chmod(0o755)
    return {"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.parametrize(
    ("registry", "asked"), [(DOCKER_HUB, "https://index.docker.io/v1/"), (HOST, HOST)]
)
def test_a_helper_is_asked_for_the_server_url(tmp_path: Path, registry: str, asked: str) -> None:
    environ = _helper(tmp_path, 'printf \'{"Username": "%s", "Secret": "s"}\' "$url"\n')
    assert Helper("echo", "test").get(registry, environ, 5) == Credentials(asked, "s")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            '{"ServerURL": "h", "Username": "<token>", "Secret": "rt"}',
            Credentials(identity_token="rt"),
        ),
        ('{"ServerURL": "h", "Username": "", "Secret": ""}', None),
    ],
)
def test_what_a_helper_answer_means(
    tmp_path: Path, answer: str, expected: Credentials | None
) -> None:
    environ = _helper(tmp_path, f"printf '%s' '{answer}'\n")
    assert Helper("echo", "test").get(HOST, environ, 5) == expected


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("echo '[1]'\n", "answered without a Username and Secret"),
        ("echo 'no'\n", "answered something other than JSON"),
        ("kill -9 $$\n", "docker-credential-echo get killed by signal 9"),
    ],
)
def test_a_helper_answering_nonsense_is_one_line(tmp_path: Path, body: str, fragment: str) -> None:
    environ = _helper(tmp_path, body)
    with pytest.raises(AuthFailed) as caught:
        Helper("echo", "test").get(HOST, environ, 5)
    assert f"credentials for {HOST}: " in str(caught.value)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("name", ["", "../../bin/sh", "a/b"])
def test_a_helper_name_cannot_be_a_path(name: str) -> None:
    with pytest.raises(ConfigError, match="invalid credential helper name"):
        Helper(name, "credsStore in config.json").get(HOST, {"PATH": "/usr/bin"}, 5)

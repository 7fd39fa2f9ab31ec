"""Where signatures go (spec §6.7): the notary server and the collection's GUN."""

from __future__ import annotations

import pytest

from regwatch.errors import ConfigError
from regwatch.refs import parse_repository
from regwatch.trust.names import gun_of, server_of


@pytest.mark.parametrize(
    ("repository", "gun"),
    [
        ("alpine", "docker.io/library/alpine"),
        ("docker.io/acme/app", "docker.io/acme/app"),
        ("registry.example:5000/team/app", "registry.example:5000/team/app"),
    ],
)
def test_gun(repository: str, gun: str) -> None:
    assert gun_of(parse_repository(repository)) == gun


@pytest.mark.parametrize(
    ("repository", "server", "url"),
    [
        ("alpine", None, "https://notary.docker.io"),
        ("registry.example:5000/app", None, "https://registry.example:5000"),
        ("registry.example/app", "https://notary.example:4443/", "https://notary.example:4443"),
    ],
)
def test_server(repository: str, server: str | None, url: str) -> None:
    assert server_of(parse_repository(repository), server) == url


@pytest.mark.parametrize(
    "server", ["http://notary.example", "notary.example", "https://", "https://h:x"]
)
def test_a_server_that_is_not_an_https_url_is_refused(server: str) -> None:
    with pytest.raises(ConfigError) as caught:
        server_of(parse_repository("registry.example/app"), server)

    assert str(caught.value) == f"valid https URL required for trust server, got {server}"

"""The realm guard decides on the address a connection actually reached (issue 8 #2).

A name that resolved to a public address when it was judged but connects to this machine (DNS
rebinding) is refused at the connection, before a byte of credentials is sent.
"""

from __future__ import annotations

import ipaddress

import pytest

from regwatch.errors import AuthFailed
from regwatch.net import Transport
from regwatch.refs import Repository
from regwatch.registry import auth
from regwatch.registry.addresses import Address
from regwatch.registry.client import RegistryClient
from regwatch.registry.credentials import StaticCredentials
from tests.faults import FaultRegistry, bearer_challenge, json_reply, tags_path, tags_reply

REPO = "team/app"
PUBLIC = frozenset({ipaddress.ip_address("203.0.113.7")})


def rebinding(host: str) -> frozenset[Address]:
    """Every name looks public when judged; the connection still reaches 127.0.0.1."""
    return PUBLIC


def test_a_realm_that_rebinds_to_loopback_is_refused_at_the_connection(
    fault_registry: FaultRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "resolve", rebinding)
    fault_registry.route(
        "GET", "/v2/", bearer_challenge(f"http://localhost:{fault_registry.port}/t")
    )
    fault_registry.route("GET", "/t", json_reply({"token": "x"}))
    client = RegistryClient(fault_registry.host, Transport(), StaticCredentials("u", "pw-secret"))

    with pytest.raises(AuthFailed, match="refusing token realm on private address"):
        client.list_tags(Repository(fault_registry.host, REPO))

    assert fault_registry.count(path="/t") == 0
    assert all("authorization" not in r.headers for r in fault_registry.seen)


def test_the_peer_check_lets_the_registrys_own_realm_through(
    fault_registry: FaultRegistry,
) -> None:
    fault_registry.route("GET", "/v2/", bearer_challenge(f"{fault_registry.url}/t"))
    fault_registry.route("GET", "/t", json_reply({"token": "x"}))
    fault_registry.route("GET", tags_path(REPO), tags_reply(REPO, ["v1"]))
    client = RegistryClient(fault_registry.host, Transport(), StaticCredentials("u", "pw-secret"))

    assert client.list_tags(Repository(fault_registry.host, REPO)) == ["v1"]
    assert fault_registry.count(path="/t") == 1

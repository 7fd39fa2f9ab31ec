"""Credentials behind a source that can renew them, and the OAuth2 token POST (issue 9).

Against the real registries: htpasswd Basic ("tls") and Bearer tokens from our token service
("token"), which takes the POST grants docker sends. The realm guards of the POST are shown on
the fault registry, which can redirect and lie about addresses.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest

from regwatch.errors import AuthFailed
from regwatch.net import Transport
from regwatch.refs import Repository
from regwatch.registry import auth
from regwatch.registry.client import RegistryClient
from regwatch.registry.credentials import Credentials, CredentialSource, StaticCredentials
from tests import images
from tests.faults import FaultRegistry, Reply, bearer_challenge, json_reply, tags_path, tags_reply
from tests.registries import RegistryServer
from tests.tokenservice import TokenService


class Rotating:
    """A source whose first credentials are refused; `refresh` moves to the next ones."""

    def __init__(self, *pairs: Credentials) -> None:
        self._pairs = list(pairs)
        self._lock = threading.Lock()
        self.refreshes = 0

    def current(self) -> Credentials | None:
        with self._lock:
            return self._pairs[0]

    def refresh(self) -> bool:
        with self._lock:
            self.refreshes += 1
            if len(self._pairs) == 1:
                return False
            self._pairs.pop(0)
            return True


def _source_is_a_credential_source(source: Rotating) -> CredentialSource:
    return source  # mypy checks that Rotating (and so any such class) satisfies the protocol


@pytest.fixture
def token_service(token_registry: RegistryServer) -> Iterator[TokenService]:
    service = token_registry.token_service
    assert service is not None
    service.reset()
    yield service
    service.reset()


def client_of(server: RegistryServer, source: CredentialSource | None) -> RegistryClient:
    transport = Transport(ca_certs=[server.ca_pem] if server.ca_pem else [])
    return RegistryClient(server.host, transport, source)


def pushed(server: RegistryServer, tag: str = "v1") -> Repository:
    """A fresh repository holding one tag, pushed with the server's own credentials."""
    repo = Repository(server.host, f"creds/{uuid.uuid4().hex[:12]}")
    owner = StaticCredentials(server.username or "", server.password or "")
    images.push(client_of(server, owner), repo, tag, images.image(repo.path))
    return repo


@pytest.mark.parametrize("kind", ["tls", "token"])
def test_refused_credentials_are_renewed_once_and_the_request_retried(
    request: pytest.FixtureRequest, kind: str
) -> None:
    server: RegistryServer = request.getfixturevalue(f"{kind}_registry")
    repo = pushed(server)
    source = Rotating(
        Credentials(server.username or "", "wrong-password"),
        Credentials(server.username or "", server.password or ""),
    )

    assert client_of(server, source).list_tags(repo) == ["v1"]
    assert source.refreshes == 1


@pytest.mark.parametrize("kind", ["tls", "token"])
def test_a_source_without_others_fails_after_one_renewal_attempt(
    request: pytest.FixtureRequest, kind: str
) -> None:
    server: RegistryServer = request.getfixturevalue(f"{kind}_registry")
    repo = pushed(server)
    source = Rotating(Credentials(server.username or "", "wrong-password"))

    with pytest.raises(AuthFailed, match="check username and password") as caught:
        client_of(server, source).list_tags(repo)

    assert source.refreshes == 1
    assert "wrong-password" not in str(caught.value)


def test_a_static_pair_is_basic_only_when_both_halves_are_given() -> None:
    assert StaticCredentials("alice", "").current() is None
    assert StaticCredentials("", "pw").current() is None
    assert StaticCredentials("alice", "pw").refresh() is False
    only_token = StaticCredentials(identity_token="rt-1").current()
    assert only_token is not None
    assert only_token.basic() is None
    shown = repr(StaticCredentials("alice", "pw-secret", "rt-secret")) + repr(
        Credentials("alice", "pw-secret", "rt-secret")
    )
    assert "pw-secret" not in shown
    assert "rt-secret" not in shown


# -- the OAuth2 POST ---------------------------------------------------------------------------


def test_an_identity_token_gets_tokens_by_post(
    token_registry: RegistryServer, token_service: TokenService, caplog: pytest.LogCaptureFixture
) -> None:
    repo = pushed(token_registry)
    token_service.reset()
    identity = token_service.refresh_token_for(token_registry.username or "")
    caplog.set_level(logging.DEBUG)

    client = client_of(token_registry, StaticCredentials(identity_token=identity))
    assert client.list_tags(repo) == ["v1"]

    seen = token_service.requests_seen
    assert [(r.method, r.grant_type, r.client_id, r.had_auth) for r in seen] == [
        ("POST", "refresh_token", "regwatch", False)
    ]
    assert identity not in caplog.text


def test_an_identity_token_can_push(
    token_registry: RegistryServer, token_service: TokenService
) -> None:
    identity = token_service.refresh_token_for(token_registry.username or "")
    client = client_of(token_registry, StaticCredentials(identity_token=identity))
    repo = Repository(token_registry.host, f"creds/{uuid.uuid4().hex[:12]}")
    item = images.image("pushed-by-post")

    assert images.push(client, repo, "v1", item) == item.digest
    assert client.list_tags(repo) == ["v1"]


def test_a_rotated_refresh_token_is_used_for_the_next_token(
    token_registry: RegistryServer, token_service: TokenService
) -> None:
    one, two = pushed(token_registry), pushed(token_registry)
    token_service.reset()
    token_service.rotate_refresh_tokens = True
    identity = token_service.refresh_token_for(token_registry.username or "")
    client = client_of(token_registry, StaticCredentials(identity_token=identity))

    assert client.list_tags(one) == ["v1"]
    assert client.list_tags(two) == ["v1"]  # the first identity token is revoked by now

    assert [r.grant_type for r in token_service.requests_seen] == ["refresh_token"] * 2


def test_a_refused_identity_token_is_renewed_by_the_source(
    token_registry: RegistryServer, token_service: TokenService
) -> None:
    repo = pushed(token_registry)
    good = token_service.refresh_token_for(token_registry.username or "")
    source = Rotating(Credentials(identity_token="rt-revoked"), Credentials(identity_token=good))

    assert client_of(token_registry, source).list_tags(repo) == ["v1"]
    assert source.refreshes == 1


def test_a_refused_identity_token_is_one_line_without_the_token(
    token_registry: RegistryServer, token_service: TokenService
) -> None:
    repo = pushed(token_registry)
    client = client_of(token_registry, StaticCredentials(identity_token="rt-revoked-secret"))

    with pytest.raises(AuthFailed, match="invalid_grant; the identity token was refused") as caught:
        client.list_tags(repo)

    assert "rt-revoked-secret" not in str(caught.value)


@pytest.mark.parametrize("status", [404, 405])
def test_a_realm_that_refuses_post_is_asked_with_get_and_basic(
    token_registry: RegistryServer, token_service: TokenService, status: int
) -> None:
    one, two = pushed(token_registry), pushed(token_registry)
    token_service.reset()
    token_service.post_refusal = status
    identity = token_service.refresh_token_for(token_registry.username or "")
    credentials = StaticCredentials(
        token_registry.username or "", token_registry.password or "", identity
    )
    client = client_of(token_registry, credentials)

    assert client.list_tags(one) == ["v1"]
    assert client.list_tags(two) == ["v1"]

    seen = [(r.method, r.had_auth) for r in token_service.requests_seen]
    assert seen == [("POST", False), ("GET", True), ("GET", True)], "POST once, then GET"


def test_username_and_password_still_get_tokens_with_get(
    token_registry: RegistryServer, token_service: TokenService
) -> None:
    repo = pushed(token_registry)
    token_service.reset()
    client = client_of(
        token_registry,
        StaticCredentials(token_registry.username or "", token_registry.password or ""),
    )

    assert client.list_tags(repo) == ["v1"]
    assert [(r.method, r.had_auth) for r in token_service.requests_seen] == [("GET", True)]


def test_the_token_service_grants_passwords_by_post(
    token_registry: RegistryServer, token_service: TokenService
) -> None:
    """What `docker login` does to get the identity token the tests above start from."""
    transport = Transport()
    try:
        answer = transport.fetch(
            "POST",
            token_service.realm,
            what="login",
            limit=1 << 20,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            data=(
                f"grant_type=password&client_id=test&access_type=offline&service="
                f"{token_service.service}&username={token_registry.username}"
                f"&password={token_registry.password}&scope="
            ).encode(),
        )
    finally:
        transport.close()
    assert answer.status == 200, answer.body
    body = answer.body.decode()
    assert '"refresh_token"' in body
    assert '"access_token"' in body


# -- the guards of the POST, on the fault registry ----------------------------------------------

REPO = "team/app"


def test_a_token_post_redirected_to_another_host_is_refused_before_sending(
    fault_registry: FaultRegistry,
) -> None:
    with FaultRegistry() as elsewhere:
        elsewhere.route("POST", "/t", json_reply({"access_token": "stolen"}))
        fault_registry.route("GET", "/v2/", bearer_challenge(f"{fault_registry.url}/t"))
        fault_registry.route("POST", "/t", Reply(307, headers={"Location": f"{elsewhere.url}/t"}))
        client = RegistryClient(
            fault_registry.host, Transport(), StaticCredentials(identity_token="rt-secret")
        )

        with pytest.raises(AuthFailed, match="refusing to send the token request to another"):
            client.list_tags(Repository(fault_registry.host, REPO))

        assert elsewhere.count() == 0
    posted = [r for r in fault_registry.seen if r.method == "POST"]
    assert len(posted) == 1
    form = parse_qs(posted[0].body.decode())
    assert form["grant_type"] == ["refresh_token"]
    assert form["refresh_token"] == ["rt-secret"]
    assert form["client_id"] == ["regwatch"]
    assert form["service"] == ["fault-registry"]
    assert form["scope"] == [f"repository:{REPO}:pull"]
    assert posted[0].headers["content-type"] == "application/x-www-form-urlencoded"


def test_a_token_post_to_a_rebinding_realm_is_refused_at_the_connection(
    fault_registry: FaultRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    public = frozenset({ipaddress.ip_address("203.0.113.7")})
    monkeypatch.setattr(auth, "resolve", lambda host: public)
    fault_registry.route(
        "GET", "/v2/", bearer_challenge(f"http://localhost:{fault_registry.port}/t")
    )
    fault_registry.route("POST", "/t", json_reply({"access_token": "x"}))
    client = RegistryClient(
        fault_registry.host, Transport(), StaticCredentials(identity_token="rt-secret")
    )

    with pytest.raises(AuthFailed, match="refusing token realm on private address"):
        client.list_tags(Repository(fault_registry.host, REPO))

    assert fault_registry.count(path="/t") == 0


def test_a_token_post_answered_303_goes_on_with_get_without_the_form(
    fault_registry: FaultRegistry,
) -> None:
    """A 303 turns the POST into a GET without the form, as HTTP says."""
    fault_registry.route("GET", "/v2/", bearer_challenge(f"{fault_registry.url}/t"))
    fault_registry.route("POST", "/t", Reply(303, headers={"Location": "/t2"}))
    fault_registry.route("GET", "/t2", json_reply({"access_token": "tok", "expires_in": 300}))
    fault_registry.route("GET", tags_path(REPO), tags_reply(REPO, ["v1"]))
    client = RegistryClient(
        fault_registry.host, Transport(), StaticCredentials(identity_token="rt-secret")
    )

    assert client.list_tags(Repository(fault_registry.host, REPO)) == ["v1"]
    hop = [r for r in fault_registry.seen if r.path == "/t2"]
    assert len(hop) == 1
    assert hop[0].body == b""
    assert "rt-secret" not in hop[0].target

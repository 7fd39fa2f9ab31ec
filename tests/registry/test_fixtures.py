"""Smoke tests for the registry fixtures, spoken in raw HTTP so they do not depend on regwatch.

If these fail, every registry test would fail for reasons that have nothing to do with the
package; they also pin down the behaviour of the token service that other tests rely on.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urljoin

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from requests.structures import CaseInsensitiveDict

from tests.registries import TOKEN_ISSUER, TOKEN_SERVICE_NAME, RegistryServer
from tests.tokenservice import TokenService, libtrust_key_id

TIMEOUT = 5


def verify_for(server: RegistryServer) -> str | bool:
    """Per-request ``verify``: the machine-wide REQUESTS_CA_BUNDLE would otherwise win."""
    return str(server.ca_path) if server.ca_path is not None else True


def challenge_params(header: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def decode_segment(segment: str) -> dict[str, Any]:
    padded = segment + "=" * (-len(segment) % 4)
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return decoded


def fetch_token(server: RegistryServer, *scopes: str, authenticated: bool = True) -> str:
    """Ask the token service for a token the way a registry client would."""
    assert server.token_service is not None
    auth = (server.username or "", server.password or "") if authenticated else None
    with requests.get(
        server.token_service.realm,
        params={"service": TOKEN_SERVICE_NAME, "scope": list(scopes)},
        auth=auth,
        timeout=TIMEOUT,
    ) as response:
        assert response.status_code == 200, response.text
        body = response.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["issued_at"])
    token: str = body["token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def get(
    server: RegistryServer,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> tuple[int, CaseInsensitiveDict[str], Any]:
    """GET on the registry; returns status, headers and the JSON body (or None)."""
    with requests.get(
        f"{server.url}{path}",
        headers=headers,
        auth=auth,
        verify=verify_for(server),
        timeout=TIMEOUT,
    ) as response:
        body = response.json() if response.content else None
        # Go spells it Www-Authenticate: keep header lookups case-insensitive.
        return response.status_code, CaseInsensitiveDict(response.headers), body


def push_blob(
    server: RegistryServer,
    repository: str,
    *,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> str:
    """Monolithic blob upload (POST, then PUT with the digest); returns the digest."""
    blob = b"regwatch smoke " + secrets.token_bytes(16)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    verify = verify_for(server)
    with requests.post(
        f"{server.url}/v2/{repository}/blobs/uploads/",
        headers=headers,
        auth=auth,
        verify=verify,
        timeout=TIMEOUT,
    ) as started:
        assert started.status_code == 202, started.text
        location = urljoin(f"{server.url}/", started.headers["Location"])
    with requests.put(
        location,
        params={"digest": digest},
        data=blob,
        headers={**(headers or {}), "Content-Type": "application/octet-stream"},
        auth=auth,
        verify=verify,
        timeout=TIMEOUT,
    ) as finished:
        assert finished.status_code == 201, finished.text
        assert finished.headers["Docker-Content-Digest"] == digest
    with requests.head(
        f"{server.url}/v2/{repository}/blobs/{digest}",
        headers=headers,
        auth=auth,
        verify=verify,
        timeout=TIMEOUT,
    ) as check:
        assert check.status_code == 200
        assert int(check.headers["Content-Length"]) == len(blob)
    stored = server.root / "docker/registry/v2/blobs/sha256" / digest[7:9] / digest[7:] / "data"
    assert stored.read_bytes() == blob
    return digest


@pytest.fixture
def token_service(token_registry: RegistryServer) -> TokenService:
    """The session's token service, with counters and test hooks reset for this test."""
    assert token_registry.token_service is not None
    token_registry.token_service.reset()
    return token_registry.token_service


# -- plain ----------------------------------------------------------------------------------------


def test_plain_registry_answers_v2(plain_registry: RegistryServer) -> None:
    assert plain_registry.kind == "plain"
    assert plain_registry.url == f"http://{plain_registry.host}"
    assert plain_registry.host.startswith("127.0.0.1:")
    status, _, _ = get(plain_registry, "/v2/")
    assert status == 200


def test_plain_registry_accepts_a_blob(plain_registry: RegistryServer) -> None:
    push_blob(plain_registry, "smoke/plain")


# -- tls + htpasswd -------------------------------------------------------------------------------


def test_tls_registry_challenges_with_basic(tls_registry: RegistryServer) -> None:
    assert tls_registry.scheme == "https"
    assert tls_registry.ca_path is not None
    assert tls_registry.ca_path.read_text() == tls_registry.ca_pem
    status, headers, _ = get(tls_registry, "/v2/")
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="regwatch-test"'


def test_tls_registry_accepts_alice(tls_registry: RegistryServer) -> None:
    assert tls_registry.username == "alice"
    assert tls_registry.password
    status, _, _ = get(tls_registry, "/v2/", auth=(tls_registry.username, tls_registry.password))
    assert status == 200


def test_tls_registry_refuses_a_wrong_password(tls_registry: RegistryServer) -> None:
    status, _, _ = get(tls_registry, "/v2/", auth=("alice", "not-the-password"))
    assert status == 401


def test_tls_registry_is_untrusted_without_the_ca(tls_registry: RegistryServer) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{tls_registry.url}/v2/", verify=True, timeout=TIMEOUT)


def test_tls_registry_accepts_a_blob(tls_registry: RegistryServer) -> None:
    assert tls_registry.username is not None
    assert tls_registry.password is not None
    push_blob(tls_registry, "smoke/tls", auth=(tls_registry.username, tls_registry.password))


# -- token ----------------------------------------------------------------------------------------


def test_token_registry_challenges_with_bearer(
    token_registry: RegistryServer, token_service: TokenService
) -> None:
    status, headers, _ = get(token_registry, "/v2/")
    assert status == 401
    challenge = headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    params = challenge_params(challenge)
    assert params["realm"] == token_service.realm
    assert params["service"] == TOKEN_SERVICE_NAME


def test_token_for_bob_passes_registry_auth(token_registry: RegistryServer) -> None:
    token = fetch_token(token_registry, "repository:foo/bar:pull")
    status, _, body = get(token_registry, "/v2/foo/bar/tags/list", headers=bearer(token))
    assert status == 404
    assert body["errors"][0]["code"] == "NAME_UNKNOWN"


def test_token_claims_and_header(
    token_registry: RegistryServer, token_service: TokenService
) -> None:
    header_segment, claims_segment, _ = fetch_token(
        token_registry, "repository:foo/bar:pull,push"
    ).split(".")
    header = decode_segment(header_segment)
    claims = decode_segment(claims_segment)
    assert header["alg"] == "RS256"
    assert header["typ"] == "JWT"
    assert header["kid"] == token_service.key_id
    assert re.fullmatch(r"[A-Z2-7]{4}(:[A-Z2-7]{4}){11}", header["kid"])
    assert claims["iss"] == TOKEN_ISSUER
    assert claims["aud"] == TOKEN_SERVICE_NAME
    assert claims["sub"] == "bob"
    assert claims["nbf"] < claims["iat"] < claims["exp"]
    assert claims["access"] == [
        {"type": "repository", "name": "foo/bar", "actions": ["pull", "push"]}
    ]


def test_libtrust_key_id_shape() -> None:
    key_id = libtrust_key_id(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    )
    assert len(key_id) == 12 * 4 + 11


def test_token_service_merges_repeated_and_space_separated_scopes(
    token_registry: RegistryServer,
) -> None:
    token = fetch_token(
        token_registry,
        "repository:a/one:pull",
        "repository:b/two:push repository:a/one:push",
        "registry:catalog:*",
    )
    assert decode_segment(token.split(".")[1])["access"] == [
        {"type": "repository", "name": "a/one", "actions": ["pull", "push"]},
        {"type": "repository", "name": "b/two", "actions": ["push"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]


def test_token_service_refuses_wrong_credentials(token_service: TokenService) -> None:
    with requests.get(
        token_service.realm,
        params={"service": TOKEN_SERVICE_NAME, "scope": "repository:foo/bar:pull"},
        auth=("bob", "wrong"),
        timeout=TIMEOUT,
    ) as response:
        assert response.status_code == 401
        assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert token_service.tokens_issued == 0


def test_token_service_refuses_a_foreign_service(token_service: TokenService) -> None:
    with requests.get(
        token_service.realm, params={"service": "elsewhere"}, timeout=TIMEOUT
    ) as response:
        assert response.status_code == 400


def test_anonymous_token_pulls_public_repositories(token_registry: RegistryServer) -> None:
    token = fetch_token(token_registry, "repository:public/x:pull,push", authenticated=False)
    claims = decode_segment(token.split(".")[1])
    assert claims["sub"] == ""
    assert claims["access"] == [{"type": "repository", "name": "public/x", "actions": ["pull"]}]
    status, _, body = get(token_registry, "/v2/public/x/tags/list", headers=bearer(token))
    assert status == 404
    assert body["errors"][0]["code"] == "NAME_UNKNOWN"


def test_anonymous_token_for_private_repositories_grants_nothing(
    token_registry: RegistryServer,
) -> None:
    token = fetch_token(token_registry, "repository:private/x:pull", authenticated=False)
    assert decode_segment(token.split(".")[1])["access"] == []
    status, headers, _ = get(token_registry, "/v2/private/x/tags/list", headers=bearer(token))
    assert status == 401
    assert 'error="insufficient_scope"' in headers["WWW-Authenticate"]


def test_issue_empty_access_forces_one_refresh(
    token_registry: RegistryServer, token_service: TokenService
) -> None:
    token_service.issue_empty_access(1)
    first = fetch_token(token_registry, "repository:foo/bar:pull")
    status, _, _ = get(token_registry, "/v2/foo/bar/tags/list", headers=bearer(first))
    assert status == 401
    second = fetch_token(token_registry, "repository:foo/bar:pull")
    status, _, _ = get(token_registry, "/v2/foo/bar/tags/list", headers=bearer(second))
    assert status == 404
    assert token_service.tokens_issued == 2


def test_token_service_records_requests(
    token_registry: RegistryServer, token_service: TokenService
) -> None:
    fetch_token(token_registry, "repository:foo/bar:pull")
    fetch_token(token_registry, "repository:public/y:pull", authenticated=False)
    seen = token_service.requests_seen
    assert [(r.path, r.had_auth) for r in seen] == [("/token", True), ("/token", False)]
    assert parse_qs(seen[0].query)["scope"] == ["repository:foo/bar:pull"]
    assert token_service.tokens_issued == 2
    token_service.reset()
    assert token_service.requests_seen == []
    assert token_service.tokens_issued == 0


def test_token_registry_accepts_a_blob(token_registry: RegistryServer) -> None:
    token = fetch_token(token_registry, "repository:smoke/token:pull,push")
    push_blob(token_registry, "smoke/token", headers=bearer(token))

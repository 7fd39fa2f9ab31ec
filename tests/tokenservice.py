"""A tiny Docker token service (the ``realm`` of a Bearer challenge) for the registry tests.

docker-registry only verifies tokens; something has to issue them. Writing the issuer here keeps the
suite free of extra daemons and lets tests steer it: count requests, check what a client asked
for, and hand out useless tokens on purpose to exercise a client's token refresh.

Besides the spec's ``GET`` with Basic, it takes the OAuth2 ``POST`` docker sends (a form with
``grant_type`` ``password`` or ``refresh_token``, ``client_id``, ``service`` and a space-separated
``scope``), issuing refresh tokens the way an identity provider does.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import secrets
import ssl
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.serving import Background

TOKEN_LIFETIME_SECONDS = 300


class SeenRequest(NamedTuple):
    """One request that reached the token service, kept so tests can assert on client behaviour."""

    path: str
    query: str
    had_auth: bool
    method: str = "GET"
    grant_type: str | None = None
    client_id: str | None = None


class Scope(NamedTuple):
    """One parsed ``type:name:actions`` scope, e.g. ``repository:foo/bar:pull,push``."""

    type: str
    name: str
    actions: tuple[str, ...]


def b64url(data: bytes) -> str:
    """Base64url without padding, as JWS compact serialization wants it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def libtrust_key_id(public_key: rsa.RSAPublicKey) -> str:
    """The key id docker-registry derives for a key of its ``rootcertbundle``.

    A token's ``kid`` must match it exactly, or the registry cannot find the verification key.
    """
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(spki).digest()[:30]).decode("ascii").rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def parse_scopes(values: list[str]) -> list[Scope]:
    """Parse every ``scope`` parameter; one parameter may hold several scopes separated by spaces.

    The name is what lies between the first and the last colon, so names with a colon survive.
    """
    scopes: list[Scope] = []
    for value in values:
        for item in value.split():
            type_, sep, rest = item.partition(":")
            name, sep2, actions = rest.rpartition(":")
            if not (sep and sep2 and type_ and name):
                raise ValueError(f"invalid scope {item!r}")
            scopes.append(Scope(type_, name, tuple(a for a in actions.split(",") if a)))
    return scopes


def _self_signed_certificate(key: rsa.RSAPrivateKey, common_name: str) -> x509.Certificate:
    """A certificate for the signing key: docker-registry reads keys only from certificates."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


class _TokenHTTPServer(ThreadingHTTPServer):
    """The HTTP server, with a back reference to the service that owns the policy and counters."""

    daemon_threads = True

    def __init__(self, service: TokenService) -> None:
        super().__init__(("127.0.0.1", 0), _TokenRequestHandler)
        self.service = service


class _TokenRequestHandler(BaseHTTPRequestHandler):
    """Answers ``GET /token`` and ``POST /token``; everything else is 404."""

    server: _TokenHTTPServer

    def do_GET(self) -> None:
        """Record the request, then issue a token or explain why not."""
        service = self.server.service
        split = urlsplit(self.path)
        authorization = self.headers.get("Authorization")
        service.record(SeenRequest(split.path, split.query, authorization is not None))
        if split.path != "/token":
            self._send_json(404, _errors("NOT_FOUND", "no such endpoint"))
            return
        query = parse_qs(split.query, keep_blank_values=True)
        user = service.authenticate(authorization)
        if user is None:
            self._send_json(
                401,
                _errors("UNAUTHORIZED", "invalid username or password"),
                {"WWW-Authenticate": f'Basic realm="{service.issuer}"'},
            )
            return
        requested_service = query.get("service", [service.service])[-1]
        if requested_service != service.service:
            self._send_json(
                400, _errors("INVALID_SERVICE", f"unknown service {requested_service!r}")
            )
            return
        try:
            scopes = parse_scopes(query.get("scope", []))
        except ValueError as exc:
            self._send_json(400, _errors("INVALID_SCOPE", str(exc)))
            return
        self._send_json(200, service.issue(user, scopes))

    def do_POST(self) -> None:
        """The OAuth2 grants: a password (``access_type=offline`` adds a refresh token), or a
        refresh token; the answer names the token ``access_token`` only, as OAuth2 does."""
        service = self.server.service
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode("utf-8")).items()}
        authorization = self.headers.get("Authorization")
        grant = form.get("grant_type")
        seen = SeenRequest(
            split.path, "", authorization is not None, "POST", grant, form.get("client_id")
        )
        service.record(seen)
        refusal = service.post_refusal
        if split.path != "/token" or refusal is not None:
            self._send_json(refusal or 404, _errors("NOT_FOUND", "no such endpoint"))
            return
        if not form.get("client_id"):
            self._send_json(400, {"error": "invalid_request"})
            return
        if grant == "password":
            user = service.check_password(form.get("username", ""), form.get("password", ""))
            offline = form.get("access_type") == "offline"
        elif grant == "refresh_token":
            user = service.redeem(form.get("refresh_token", ""))
            offline = True
        else:
            self._send_json(400, {"error": "unsupported_grant_type"})
            return
        if user is None:
            self._send_json(400, {"error": "invalid_grant"})
            return
        if form.get("service", service.service) != service.service:
            self._send_json(400, {"error": "invalid_request"})
            return
        try:
            scopes = parse_scopes([form.get("scope", "")])
        except ValueError:
            self._send_json(400, {"error": "invalid_scope"})
            return
        issued = service.issue(user, scopes)
        del issued["token"]
        if offline:
            rotated = service.rotated_refresh_token(user, form.get("refresh_token"))
            if rotated is not None:
                issued["refresh_token"] = rotated
        self._send_json(200, issued)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the tests read ``requests_seen`` instead of a noisy stderr."""

    def _send_json(
        self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)


def _errors(code: str, message: str) -> dict[str, Any]:
    """The registry's error envelope, which clients already know how to report."""
    return {"errors": [{"code": code, "message": message}]}


class TokenService:
    """Issues RS256 JWTs that docker-registry accepts, on ``http://127.0.0.1:<port>/token``.

    Policy: a user with valid Basic credentials gets every requested action on every resource
    (a user added with ``pull_only`` gets only ``pull``); an anonymous caller gets only ``pull``
    on repositories under ``public/``. Wrong credentials get 401. Use ``start()``/``stop()``;
    ``realm`` goes into the registry's ``auth.token``.
    """

    def __init__(
        self,
        *,
        issuer: str,
        service: str,
        users: Mapping[str, str],
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        """`tls` (certificate and key files) serves over HTTPS, as a notary server's realm."""
        self.issuer = issuer
        self.service = service
        self._users = dict(users)
        self._pull_only: set[str] = set()
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = libtrust_key_id(self._key.public_key())
        certificate = _self_signed_certificate(self._key, issuer)
        self.certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
        self._lock = threading.Lock()
        self._requests: list[SeenRequest] = []
        self._tokens_issued = 0
        self._empty_access_remaining = 0
        self._refresh_tokens: dict[str, str] = {}
        self.rotate_refresh_tokens = False
        """When set, every refresh grant returns a new refresh token and revokes the old one."""
        self.post_refusal: int | None = None
        """When set, every POST is answered with this status (a realm that takes GET only)."""
        self._server = _TokenHTTPServer(self)
        self._scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        self._serving = Background(self._server, "regwatch-token-service", poll=0.05)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self.port}"

    @property
    def realm(self) -> str:
        """The token endpoint, exactly as the registry advertises it in its challenge."""
        return f"{self.url}/token"

    def start(self) -> TokenService:
        self._serving.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        self._serving.stop()
        self._server.server_close()

    # -- test hooks ---------------------------------------------------------------------------

    @property
    def requests_seen(self) -> list[SeenRequest]:
        """A snapshot of every request so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def tokens_issued(self) -> int:
        with self._lock:
            return self._tokens_issued

    def reset(self) -> None:
        """Forget requests, counters and pending empty-access tokens (the service is shared)."""
        with self._lock:
            self._requests.clear()
            self._tokens_issued = 0
            self._empty_access_remaining = 0
            self._refresh_tokens.clear()
        self.rotate_refresh_tokens = False
        self.post_refusal = None

    def refresh_token_for(self, username: str) -> str:
        """A refresh token for a known user, as ``docker login`` stores its identity token."""
        token = "rt-" + secrets.token_urlsafe(24)
        with self._lock:
            assert username in self._users, username
            self._refresh_tokens[token] = username
        return token

    def revoke(self, refresh_token: str) -> None:
        with self._lock:
            self._refresh_tokens.pop(refresh_token, None)

    def add_user(self, username: str, password: str, *, pull_only: bool = False) -> None:
        """Another user; ``pull_only`` users get only ``pull`` whatever they ask for."""
        with self._lock:
            self._users[username] = password
            if pull_only:
                self._pull_only.add(username)

    def issue_empty_access(self, n: int) -> None:
        """Make the next ``n`` tokens grant nothing, so the registry answers 401 to them."""
        with self._lock:
            self._empty_access_remaining = n

    # -- used by the request handler ----------------------------------------------------------

    def record(self, request: SeenRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def authenticate(self, authorization: str | None) -> str | None:
        """Return the user name ("" when anonymous), or None when the credentials are wrong."""
        if authorization is None:
            return ""
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        username, sep, password = decoded.partition(":")
        expected = self._users.get(username)
        if not sep or expected is None:
            return None
        if not hmac.compare_digest(password.encode("utf-8"), expected.encode("utf-8")):
            return None
        return username

    def check_password(self, username: str, password: str) -> str | None:
        """The user a password grant names, or None when the password is wrong."""
        expected = self._users.get(username)
        if expected is None or not hmac.compare_digest(password.encode(), expected.encode()):
            return None
        return username

    def redeem(self, refresh_token: str) -> str | None:
        with self._lock:
            return self._refresh_tokens.get(refresh_token)

    def rotated_refresh_token(self, user: str, old: str | None) -> str | None:
        """A refresh token to hand back: a new one for a password grant, or for a refresh grant
        when rotating (the old one is revoked); None when the old one stays valid."""
        if old is not None and not self.rotate_refresh_tokens:
            return None
        if old is not None:
            self.revoke(old)
        return self.refresh_token_for(user)

    def grant(self, user: str, scopes: list[Scope]) -> list[dict[str, Any]]:
        """Apply the policy; scopes naming the same resource are merged, ungranted ones dropped."""
        merged: dict[tuple[str, str], list[str]] = {}
        for scope in scopes:
            if user in self._pull_only:
                allowed = ["pull"] if {"pull", "*"} & set(scope.actions) else []
            elif user:
                allowed = list(scope.actions)
            elif scope.type == "repository" and scope.name.startswith("public/"):
                allowed = ["pull"] if {"pull", "*"} & set(scope.actions) else []
            else:
                allowed = []
            actions = merged.setdefault((scope.type, scope.name), [])
            actions.extend(a for a in allowed if a not in actions)
        return [
            {"type": type_, "name": name, "actions": actions}
            for (type_, name), actions in merged.items()
            if actions
        ]

    def issue(self, user: str, scopes: list[Scope]) -> dict[str, Any]:
        """Build the token response; counts the token and consumes one empty-access slot."""
        with self._lock:
            empty = self._empty_access_remaining > 0
            if empty:
                self._empty_access_remaining -= 1
            self._tokens_issued += 1
        access = [] if empty else self.grant(user, scopes)
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user,
            "aud": self.service,
            "exp": now + TOKEN_LIFETIME_SECONDS,
            "nbf": now - 30,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        token = self.sign(claims)
        issued_at = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "token": token,
            "access_token": token,
            "expires_in": TOKEN_LIFETIME_SECONDS,
            "issued_at": issued_at,
        }

    def sign(self, claims: Mapping[str, Any]) -> str:
        """JWS compact serialization with RS256, written out so the suite needs no JWT library."""
        header = {"typ": "JWT", "alg": "RS256", "kid": self.key_id}
        signing_input = ".".join(
            b64url(json.dumps(part, separators=(",", ":")).encode("utf-8"))
            for part in (header, claims)
        )
        signature = self._key.sign(
            signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
        )
        return f"{signing_input}.{b64url(signature)}"

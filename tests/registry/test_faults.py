"""RegistryClient against the faults a real registry cannot produce on demand (``tests.faults``).

Every client here runs on a fake clock: the transport's ``sleep`` records the wait and advances
the clock instead of sleeping, so retry schedules and budgets are asserted exactly and fast. Every
transport also refuses to leave the machine, so a client that followed a hostile URL is caught
without sending anything anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

from regwatch.errors import (
    AuthFailed,
    DigestMismatch,
    NotFound,
    RateLimited,
    RegistryError,
    RegwatchError,
    Unreachable,
)
from regwatch.image.model import Descriptor
from regwatch.net import Answer, Streamed, Transport
from regwatch.refs import Reference, Repository
from regwatch.registry.client import MAX_MANIFEST_BYTES, RegistryClient
from regwatch.registry.credentials import StaticCredentials
from regwatch.retrying import RetryPolicy
from tests.faults import (
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    RESET,
    RST,
    Action,
    FaultRegistry,
    Reset,
    bearer_challenge,
    blob_path,
    blob_reply,
    empty_reply,
    manifest_path,
    manifest_reply,
    rate_limited,
    registry_error,
    tags_path,
    tags_reply,
    truncated,
    unavailable,
)

REPO = "team/app"
TAGS = tags_path(REPO)
FAKE_BODY = b'{"fake":"manifest"}'
FAKE_DIGEST = "sha256:" + hashlib.sha256(FAKE_BODY).hexdigest()
USERNAME, PASSWORD = "u", "secret-pass"
SECRETS = (
    PASSWORD,
    base64.b64encode(PASSWORD.encode()).decode(),
    base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode(),
)


# -- harness ---------------------------------------------------------------------------------------


class FakeClock:
    """``clock`` and ``sleep`` for a Transport: sleeping records the wait and advances time."""

    def __init__(self) -> None:
        self.start = self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    @property
    def elapsed(self) -> float:
        return self.now - self.start


@dataclass
class GuardedTransport(Transport):
    """A Transport that only talks to loopback: anything else is recorded and is unreachable."""

    blocked: list[tuple[str, str, bool]] = field(default_factory=list)
    """(method, url, carried an Authorization header) of every refused request."""

    def fetch(self, method: str, url: str, **kwargs: Any) -> Answer:
        self._guard(method, url, kwargs)
        return super().fetch(method, url, **kwargs)

    def request(self, method: str, url: str, **kwargs: Any) -> Streamed:
        self._guard(method, url, kwargs)
        return super().request(method, url, **kwargs)

    def _guard(self, method: str, url: str, kwargs: Mapping[str, Any]) -> None:
        host = urlsplit(url).hostname or ""
        if not _is_loopback(host):
            with_auth = any(k.lower() == "authorization" for k in kwargs.get("headers") or {})
            self.blocked.append((method, url, with_auth))
            raise Unreachable(
                f"{kwargs['what']}: blocked by the test, {host} is not on this machine"
            )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


MakeClient = Callable[..., RegistryClient]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def transports() -> Iterator[list[GuardedTransport]]:
    made: list[GuardedTransport] = []
    yield made
    for transport in made:
        transport.close()


@pytest.fixture
def make_client(
    fault_registry: FaultRegistry, clock: FakeClock, transports: list[GuardedTransport]
) -> MakeClient:
    """``make_client(credentials=None)``: a client of the fault registry on the fake clock."""

    def make(credentials: StaticCredentials | None = None) -> RegistryClient:
        transport = GuardedTransport(retry=RetryPolicy.from_env(), sleep=clock.sleep, clock=clock)
        transports.append(transport)
        return RegistryClient(fault_registry.host, transport, credentials)

    return make


@pytest.fixture
def client(make_client: MakeClient) -> RegistryClient:
    return make_client()


@pytest.fixture
def repo(fault_registry: FaultRegistry) -> Repository:
    return Repository(fault_registry.host, REPO)


def one_line(error: BaseException) -> str:
    """The message a user would see: one line, no traceback, no secret."""
    message = str(error)
    assert message
    assert "\n" not in message
    assert "Traceback" not in message
    for secret in SECRETS:
        assert secret not in message
    return message


def tag_pages(*pages: tuple[str, Sequence[str], str | None]) -> list[tuple[str, Action]]:
    """(target, tags, next link) per page → (target, reply) for ``plan``."""
    return [(target, tags_reply(REPO, tags, next_url=link)) for target, tags, link in pages]


# -- the fake itself -------------------------------------------------------------------------------


def test_client_pings_the_fake_over_plain_http(
    fault_registry: FaultRegistry, client: RegistryClient, repo: Repository
) -> None:
    fault_registry.route("GET", TAGS, tags_reply(REPO, ["v1"]))

    assert client.list_tags(repo) == ["v1"]
    assert client.base_url == fault_registry.url
    assert fault_registry.tls_probes == 1  # https is tried first and fails cleanly
    assert [(r.method, r.path) for r in fault_registry.requests_seen] == [
        ("GET", "/v2/"),
        ("GET", TAGS),
    ]
    assert all(r.server == fault_registry.host for r in fault_registry.requests_seen)


# -- 429, 408 and 5xx ------------------------------------------------------------------------------


def test_429_twice_then_success(
    fault_registry: FaultRegistry, client: RegistryClient, repo: Repository, clock: FakeClock
) -> None:
    fault_registry.plan(
        "GET", TAGS, rate_limited("0"), rate_limited("0"), tags_reply(REPO, ["a", "b"])
    )

    assert client.list_tags(repo) == ["a", "b"]
    assert fault_registry.count("GET", TAGS) == 3
    policy = RetryPolicy.from_env()
    assert len(clock.sleeps) == 2
    assert all(0 < s <= policy.max_interval * (1 + policy.jitter) for s in clock.sleeps)


def test_retry_after_is_honoured(
    fault_registry: FaultRegistry, client: RegistryClient, repo: Repository, clock: FakeClock
) -> None:
    fault_registry.plan("GET", TAGS, rate_limited("1"), tags_reply(REPO, ["a"]))

    assert client.list_tags(repo) == ["a"]
    assert fault_registry.count("GET", TAGS) == 2
    assert len(clock.sleeps) == 1
    assert clock.sleeps[0] >= 1.0


def test_retry_after_beyond_the_budget_gives_up_at_once(
    fault_registry: FaultRegistry, client: RegistryClient, repo: Repository, clock: FakeClock
) -> None:
    fault_registry.plan("GET", TAGS, rate_limited("3600"), tags_reply(REPO, ["a"]))

    with pytest.raises(RateLimited) as caught:
        client.list_tags(repo)

    assert "429" in one_line(caught.value)
    assert caught.value.status == 429
    assert fault_registry.count("GET", TAGS) == 1
    assert clock.sleeps == []


def test_endless_429_gives_up_within_the_budget(
    fault_registry: FaultRegistry, client: RegistryClient, repo: Repository, clock: FakeClock
) -> None:
    fault_registry.route("GET", TAGS, rate_limited("0"))
    policy = RetryPolicy.from_env()

    with pytest.raises(RateLimited) as caught:
        client.list_tags(repo)

    message = one_line(caught.value)
    assert "429" in message
    assert "rate-limited" in message
    assert caught.value.status == 429
    assert clock.elapsed == pytest.approx(sum(clock.sleeps))
    assert clock.elapsed <= policy.budget
    # It kept trying until the next wait would have overrun the budget, not much earlier.
    assert clock.elapsed > policy.budget - policy.max_interval * (1 + policy.jitter)
    assert fault_registry.count("GET", TAGS) == len(clock.sleeps) + 1


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_transient_status_is_retried(
    fault_registry: FaultRegistry,
    client: RegistryClient,
    repo: Repository,
    clock: FakeClock,
    status: int,
) -> None:
    fault_registry.plan("GET", TAGS, unavailable(status), tags_reply(REPO, ["a"]))

    assert client.list_tags(repo) == ["a"]
    assert fault_registry.count("GET", TAGS) == 2
    assert len(clock.sleeps) == 1


@pytest.mark.parametrize("status", [501, 505])
def test_permanent_5xx_is_not_retried(
    fault_registry: FaultRegistry,
    client: RegistryClient,
    repo: Repository,
    clock: FakeClock,
    status: int,
) -> None:
    fault_registry.route("GET", TAGS, unavailable(status))

    with pytest.raises(RegistryError) as caught:
        client.list_tags(repo)

    assert caught.value.status == status
    assert str(status) in one_line(caught.value)
    assert fault_registry.count("GET", TAGS) == 1
    assert clock.sleeps == []


# -- connection resets -----------------------------------------------------------------------------


@pytest.mark.parametrize("reset", [RESET, RST], ids=["fin", "rst"])
def test_reset_on_idempotent_get_is_retried(
    fault_registry: FaultRegistry,
    client: RegistryClient,
    repo: Repository,
    clock: FakeClock,
    reset: Reset,
) -> None:
    fault_registry.plan("GET", TAGS, reset, tags_reply(REPO, ["a"]))

    assert client.list_tags(repo) == ["a"]
    assert fault_registry.count("GET", TAGS) == 2
    assert len(clock.sleeps) == 1


@pytest.mark.parametrize("reset", [RESET, RST], ids=["fin", "rst"])
def test_reset_on_post_is_not_retried(
    fault_registry: FaultRegistry,
    client: RegistryClient,
    repo: Repository,
    clock: FakeClock,
    reset: Reset,
) -> None:
    uploads = f"/v2/{REPO}/blobs/uploads/"
    fault_registry.plan("POST", uploads, reset, empty_reply(201))
    source = Repository(fault_registry.host, "team/base")

    with pytest.raises(Unreachable) as caught:
        client.mount_blob(repo, FAKE_DIGEST, source)

    one_line(caught.value)
    assert fault_registry.count("POST", uploads) == 1
    assert fault_registry.pending("POST", uploads) == 1  # the 201 was never asked for
    assert clock.sleeps == []


# -- blobs -----------------------------------------------------------------------------------------


def test_truncated_blob_is_unreachable(
    fault_registry: FaultRegistry, client: RegistryClient, repo: Repository
) -> None:
    data = bytes(range(256)) * 4
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    fault_registry.route("GET", blob_path(REPO, digest), truncated(data[:400], len(data)))

    with pytest.raises(Unreachable) as caught, client.open_blob(repo, digest, len(data)) as reader:
        reader.read()

    assert digest in one_line(caught.value)
    assert fault_registry.count("GET", blob_path(REPO, digest)) == 1


def test_blob_with_wrong_bytes_is_a_digest_mismatch(
    fault_registry: FaultRegistry, client: RegistryClient, repo: Repository
) -> None:
    expected, served = b"good bytes", b"evil bytes"
    digest = "sha256:" + hashlib.sha256(expected).hexdigest()
    fault_registry.route("GET", blob_path(REPO, digest), blob_reply(served))

    with pytest.raises(DigestMismatch) as caught, client.open_blob(repo, digest, 10) as reader:
        reader.read()

    message = one_line(caught.value)
    assert "sha256:" + hashlib.sha256(served).hexdigest() in message
    assert f"expected {digest}" in message


def test_blob_longer_than_its_size_is_a_digest_mismatch(
    fault_registry: FaultRegistry, client: RegistryClient, repo: Repository
) -> None:
    data = b"0123456789" * 2
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    fault_registry.route("GET", blob_path(REPO, digest), blob_reply(data))

    with pytest.raises(DigestMismatch) as caught, client.open_blob(repo, digest, 10) as reader:
        reader.read()

    assert "more than the expected 10 bytes" in one_line(caught.value)


def test_correct_blob_streams(
    fault_registry: FaultRegistry, client: RegistryClient, repo: Repository
) -> None:
    data = bytes(range(256)) * 6000  # 1.5 MB: more than one chunk
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    fault_registry.route("GET", blob_path(REPO, digest), blob_reply(data))

    with client.open_blob(repo, digest, len(data)) as reader:
        chunks = list(reader)

    assert len(chunks) > 1
    assert b"".join(chunks) == data
    assert reader.bytes_read == len(data)


# -- manifests -------------------------------------------------------------------------------------


def test_manifest_not_matching_the_requested_digest(
    fault_registry: FaultRegistry, client: RegistryClient, repo: Repository
) -> None:
    wanted = "sha256:" + hashlib.sha256(b"the manifest we asked for").hexdigest()
    # The registry even claims the wanted digest in its header; only the bytes count.
    fault_registry.route(
        "GET", manifest_path(REPO, wanted), manifest_reply(FAKE_BODY, digest=wanted)
    )

    with pytest.raises(DigestMismatch) as caught:
        client.get_manifest(Reference(repo, digest=wanted))

    message = one_line(caught.value)
    assert f"content has digest {FAKE_DIGEST}, expected {wanted}" in message


@pytest.mark.parametrize(
    "header_digest", [None, "", "sha256:" + "0" * 64], ids=["absent", "true", "lying"]
)
def test_manifest_by_tag_is_hashed_from_its_body(
    fault_registry: FaultRegistry,
    client: RegistryClient,
    repo: Repository,
    header_digest: str | None,
) -> None:
    fault_registry.route(
        "GET",
        manifest_path(REPO, "v1"),
        manifest_reply(FAKE_BODY, DOCKER_MANIFEST, digest=header_digest),
    )

    manifest = client.get_manifest(Reference(repo, tag="v1"))

    assert manifest is not None
    assert manifest.body == FAKE_BODY
    assert manifest.descriptor == Descriptor(DOCKER_MANIFEST, FAKE_DIGEST, len(FAKE_BODY))


def test_oversize_manifest_is_refused(
    fault_registry: FaultRegistry, client: RegistryClient, repo: Repository
) -> None:
    body = b'{"pad":"' + b"x" * MAX_MANIFEST_BYTES + b'"}'
    fault_registry.route("GET", manifest_path(REPO, "big"), manifest_reply(body, digest=None))

    with pytest.raises(RegistryError) as caught:
        client.get_manifest(Reference(repo, tag="big"))

    assert f"larger than {MAX_MANIFEST_BYTES} bytes" in one_line(caught.value)
    assert not isinstance(caught.value, NotFound | DigestMismatch)


# -- spec §3.5: HEAD, and GET when HEAD is not conclusive ------------------------------------------


def test_fake_manifest_digest() -> None:
    assert FAKE_DIGEST.startswith("sha256:c4c25c2c")


@pytest.mark.parametrize(
    ("head", "heads", "gets"),
    [
        pytest.param(manifest_reply(FAKE_BODY), 1, 0, id="200-complete"),
        pytest.param(manifest_reply(FAKE_BODY, digest=None), 1, 1, id="200-no-digest"),
        pytest.param(manifest_reply(FAKE_BODY, media_type=None), 1, 1, id="200-no-type"),
        pytest.param(manifest_reply(FAKE_BODY, send_length=False), 1, 1, id="200-no-length"),
        pytest.param(empty_reply(401), 1, 1, id="401"),
        pytest.param(empty_reply(403), 1, 1, id="403"),
        pytest.param(unavailable(500), 1, 1, id="500"),
        pytest.param(empty_reply(429), 1, 1, id="429"),
    ],
)
def test_resolve_by_tag(
    fault_registry: FaultRegistry,
    client: RegistryClient,
    repo: Repository,
    head: Action,
    heads: int,
    gets: int,
) -> None:
    path = manifest_path(REPO, "v1")
    fault_registry.route("HEAD", path, head)
    fault_registry.route("GET", path, manifest_reply(FAKE_BODY, OCI_MANIFEST, digest=None))

    descriptor = client.resolve(Reference(repo, tag="v1"))

    assert descriptor == Descriptor(OCI_MANIFEST, FAKE_DIGEST, len(FAKE_BODY))
    assert fault_registry.count("HEAD", path) == heads, "HEAD is never retried: GET is"
    assert fault_registry.count("GET", path) == gets


def test_resolve_head_404_is_none_without_get(
    fault_registry: FaultRegistry, client: RegistryClient, repo: Repository
) -> None:
    path = manifest_path(REPO, "gone")
    fault_registry.route("HEAD", path, empty_reply(404))
    fault_registry.route("GET", path, registry_error(404, "MANIFEST_UNKNOWN", "manifest unknown"))

    assert client.resolve(Reference(repo, tag="gone")) is None
    assert fault_registry.count("HEAD", path) == 1
    assert fault_registry.count("GET", path) == 0


def test_resolve_head_contradicting_the_requested_digest_falls_back_to_get(
    fault_registry: FaultRegistry, client: RegistryClient, repo: Repository
) -> None:
    path = manifest_path(REPO, FAKE_DIGEST)
    fault_registry.route("HEAD", path, manifest_reply(FAKE_BODY, digest="sha256:" + "f" * 64))
    fault_registry.route("GET", path, manifest_reply(FAKE_BODY, digest=None))

    descriptor = client.resolve(Reference(repo, digest=FAKE_DIGEST))

    assert descriptor == Descriptor(OCI_MANIFEST, FAKE_DIGEST, len(FAKE_BODY))
    assert fault_registry.count("HEAD", path) == 1
    assert fault_registry.count("GET", path) == 1


def test_resolve_fallback_get_still_checks_the_digest(
    fault_registry: FaultRegistry, client: RegistryClient, repo: Repository
) -> None:
    wanted = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    path = manifest_path(REPO, wanted)
    fault_registry.route("HEAD", path, manifest_reply(FAKE_BODY, digest=None))
    fault_registry.route("GET", path, manifest_reply(FAKE_BODY, digest=None))

    with pytest.raises(DigestMismatch) as caught:
        client.resolve(Reference(repo, digest=wanted))

    assert wanted in one_line(caught.value)


# -- tags/list: pagination and 404 -----------------------------------------------------------------


def test_link_pagination_over_three_pages(
    fault_registry: FaultRegistry, client: RegistryClient, repo: Repository
) -> None:
    page2, page3 = f"{TAGS}?last=b&n=2", f"{TAGS}?last=d&n=2"
    for target, reply in tag_pages(
        (TAGS, ["a", "b"], page2), (page2, ["c", "d"], page3), (page3, ["e"], None)
    ):
        fault_registry.plan("GET", target, reply)

    assert client.list_tags(repo) == ["a", "b", "c", "d", "e"]
    assert [r.target for r in fault_registry.requests_seen if r.path == TAGS] == [
        f"{TAGS}?n=1000",  # spec §3.3.1: the first page asks for 1000
        page2,
        page3,
    ]


def test_link_to_another_host_is_refused(
    fault_registry: FaultRegistry,
    client: RegistryClient,
    repo: Repository,
    transports: list[GuardedTransport],
) -> None:
    with FaultRegistry("127.0.0.2") as elsewhere:
        elsewhere.route("GET", TAGS, tags_reply(REPO, ["stolen"]))
        fault_registry.paginate_to(f"{elsewhere.url}{TAGS}?last=a", ["a"])

        with pytest.raises(RegistryError) as caught:
            client.list_tags(repo)

        message = one_line(caught.value)
        assert "another host" in message
        assert elsewhere.host in message
        assert elsewhere.seen == []
        assert elsewhere.tls_probes == 0
    assert fault_registry.count("GET", TAGS) == 1
    assert all(t.blocked == [] for t in transports)


def test_credentials_do_not_follow_a_blob_redirect_to_another_host(
    fault_registry: FaultRegistry, make_client: MakeClient, repo: Repository
) -> None:
    """Registries send blob GETs to storage elsewhere; our Basic header must stay home."""
    data = b"layer bytes"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with FaultRegistry("127.0.0.2") as storage:
        storage.route("GET", "/storage/blob", blob_reply(data))
        location = {"Location": f"{storage.url}/storage/blob"}
        fault_registry.route("GET", blob_path(REPO, digest), empty_reply(307, **location))
        client = make_client(StaticCredentials(USERNAME, PASSWORD))

        with client.open_blob(repo, digest, len(data)) as reader:
            assert reader.read() == data

        assert [r.path for r in storage.seen] == ["/storage/blob"]
        assert "authorization" not in storage.seen[0].headers
    home = [r for r in fault_registry.seen if r.path == blob_path(REPO, digest)]
    assert home[0].headers["authorization"].startswith("Basic ")


@pytest.mark.parametrize("cycle", [1, 2], ids=["self", "two-pages"])
def test_link_loop_is_refused(
    fault_registry: FaultRegistry, client: RegistryClient, repo: Repository, cycle: int
) -> None:
    page2 = f"{TAGS}?last=a"
    if cycle == 1:
        fault_registry.paginate_to(TAGS, ["a"])
    else:
        fault_registry.paginate_to(page2, ["a"], target=TAGS)
        fault_registry.paginate_to(TAGS, ["b"], target=page2)

    with pytest.raises(RegistryError) as caught:
        client.list_tags(repo)

    assert "pagination does not end" in one_line(caught.value)
    # The first page is `?n=1000`; the loop closes on the first URL seen twice.
    assert fault_registry.count("GET", TAGS) == cycle + 1


def test_tags_404_without_body_means_no_tags(
    fault_registry: FaultRegistry, client: RegistryClient, repo: Repository
) -> None:
    fault_registry.route("GET", TAGS, empty_reply(404))

    assert client.list_tags(repo) == []
    assert fault_registry.count("GET", TAGS) == 1


def test_tags_404_name_unknown_is_not_found(
    fault_registry: FaultRegistry, client: RegistryClient, repo: Repository
) -> None:
    fault_registry.route(
        "GET",
        TAGS,
        registry_error(404, "NAME_UNKNOWN", "repository name not known to registry"),
    )

    with pytest.raises(NotFound) as caught:
        client.list_tags(repo)

    assert "NAME_UNKNOWN" in one_line(caught.value)
    assert caught.value.status == 404
    assert fault_registry.count("GET", TAGS) == 1


# -- auth ------------------------------------------------------------------------------------------


def test_private_ip_realm_on_another_host_is_refused(
    fault_registry: FaultRegistry,
    make_client: MakeClient,
    repo: Repository,
    transports: list[GuardedTransport],
) -> None:
    fault_registry.route("GET", "/v2/", bearer_challenge("http://10.0.0.1/token"))
    client = make_client(StaticCredentials(USERNAME, PASSWORD))

    try:
        with pytest.raises(AuthFailed) as caught:
            client.list_tags(repo)
    finally:
        # Whatever happened, the credentials went nowhere: not to the realm, not to the fake.
        assert all(not r.headers.get("authorization") for r in fault_registry.requests_seen)
    message = one_line(caught.value)
    assert "10.0.0.1" in message
    assert all(t.blocked == [] for t in transports)
    assert fault_registry.count("GET", TAGS) == 0


def test_refused_token_never_shows_the_password(
    fault_registry: FaultRegistry, make_client: MakeClient, repo: Repository
) -> None:
    """A realm on the registry's own host is followed; its 401 is reported without secrets."""
    fault_registry.route("GET", "/v2/", bearer_challenge(f"{fault_registry.url}/token"))
    fault_registry.route("GET", "/token", registry_error(401, "UNAUTHORIZED", "bad password"))
    client = make_client(StaticCredentials(USERNAME, PASSWORD))

    with pytest.raises(AuthFailed) as caught:
        client.list_tags(repo)

    assert "check username and password" in one_line(caught.value)
    tokens = [r for r in fault_registry.requests_seen if r.path == "/token"]
    assert len(tokens) == 1
    assert tokens[0].headers["authorization"] == "Basic " + SECRETS[2]
    assert fault_registry.count("GET", TAGS) == 0


def test_every_error_message_is_free_of_secrets() -> None:
    """Guards ``one_line`` itself: it must catch each form the password could take."""
    for secret in SECRETS:
        with pytest.raises(AssertionError):
            one_line(RegwatchError(f"oops {secret}"))

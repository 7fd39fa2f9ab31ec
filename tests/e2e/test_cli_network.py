"""`regwatch tags|digest` against hostile and broken servers: the fault registry, through the CLI.

Each failure must end as one `regwatch:` line, without a traceback or a secret, in bounded time
and memory (issue 8: #1, #2, #4, #7, #11, #13, #15, #17, #21).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import resource
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from regwatch.errors import AuthFailed, ConfigError
from regwatch.net import Transport
from regwatch.refs import Reference, Repository
from regwatch.registry.client import RegistryClient
from regwatch.registry.credentials import StaticCredentials
from tests.e2e.steps import step
from tests.e2e.test_cli import Run, assert_one_line_error, regwatch
from tests.faults import (
    FaultRegistry,
    Reply,
    SeenRequest,
    bearer_challenge,
    empty_reply,
    json_reply,
    manifest_path,
    manifest_reply,
    rate_limited,
    registry_error,
    tags_path,
    tags_reply,
)
from tests.registries import RegistryServer

REPO = "team/app"
TAGS = tags_path(REPO)
USERNAME, PASSWORD = "carol", "pw-Secret-9d1f"
SECRETS = (PASSWORD, base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode())
CREDENTIALS = {"REGWATCH_USERNAME": USERNAME, "REGWATCH_PASSWORD": PASSWORD}
PUBLIC_REGISTRY = "registry.regwatch-test.invalid"
"""A name that resolves nowhere: a public address by decision, reached through a proxy."""


@pytest.fixture
def fault() -> Iterator[FaultRegistry]:
    with FaultRegistry() as registry:
        yield registry
    assert registry.server_errors == []


def assert_fails(run: Run, *fragments: str) -> None:
    """One error line (after any retry warnings), exit 1, nothing on stdout, no traceback."""
    warnings = [line for line in run.stderr.splitlines() if "transient error:" in line]
    assert_one_line_error(
        Run(
            run.code,
            run.stdout,
            "".join(f"{line}\n" for line in run.stderr.splitlines() if line not in warnings),
        ),
        *fragments,
    )


def no_secret(run: Run) -> None:
    for secret in SECRETS:
        assert secret not in run.stderr
        assert secret not in run.stdout


def tags(fault: FaultRegistry, *extra: str, env: dict[str, str] | None = None) -> Run:
    return regwatch("tags", *extra, f"{fault.host}/{REPO}", env=env)


# -- #1: values cannot change a URL's path or query ------------------------------------------------


@pytest.mark.parametrize(
    "tag",
    [
        "feature?x",
        "a#b",
        "a b",
        "x%2F..",
        "a/b",
        "..",
        ".",
        "../../../victim/other/manifests/pwned",
    ],
)
def test_a_tag_that_could_change_the_url_sends_nothing(fault: FaultRegistry, tag: str) -> None:
    """Whatever reaches the client, the URL it builds cannot leave the repository's path."""
    client = RegistryClient(fault.host, Transport())
    with pytest.raises(ConfigError, match="invalid tag"):
        client.resolve(Reference(Repository(fault.host, REPO), tag=tag))
    with pytest.raises(ConfigError, match="invalid tag"):
        client.put_manifest(Reference(Repository(fault.host, REPO), tag=tag), b"{}", "x/y")
    assert fault.seen == []


@pytest.mark.parametrize("path", ["team/../victim", "team/app?x=1", "team app", "team/app:push"])
def test_a_repository_path_outside_the_grammar_sends_nothing(
    fault: FaultRegistry, path: str
) -> None:
    client = RegistryClient(fault.host, Transport())
    with pytest.raises(ConfigError, match="invalid repository path"):
        client.list_tags(Repository(fault.host, path))
    assert fault.seen == []


@pytest.mark.parametrize("digest", ["sha256:../../x", "sha256:ab/cd", "sha256:a?b"])
def test_a_digest_that_could_change_the_url_sends_nothing(
    fault: FaultRegistry, digest: str
) -> None:
    client = RegistryClient(fault.host, Transport())
    with pytest.raises(ConfigError, match="invalid digest"):
        client.resolve(Reference(Repository(fault.host, REPO), digest=digest))
    with pytest.raises(ConfigError, match="invalid digest"):
        client.blob_size(Repository(fault.host, REPO), digest)
    assert fault.seen == []


def test_token_scope_names_exactly_the_repository(fault: FaultRegistry) -> None:
    fault.route("GET", "/v2/", bearer_challenge(f"{fault.url}/token"))
    fault.route("GET", "/token", json_reply({"token": "t0k3n-value"}))
    fault.route("GET", TAGS, tags_reply(REPO, ["v1"]))

    run = tags(fault, env=CREDENTIALS)

    assert run.code == 0, run
    (token,) = [r for r in fault.seen if r.path == "/token"]
    assert token.query == "scope=repository%3Ateam%2Fapp%3Apull&service=fault-registry"


# -- #2: the realm guard judges the address, every spelling, every hop -----------------------------


def through_proxy(fault: FaultRegistry) -> dict[str, str]:
    """The fault registry as the HTTP proxy: a public registry name still reaches it."""
    return {**CREDENTIALS, "HTTP_PROXY": fault.url, "http_proxy": fault.url}


def public_tags(fault: FaultRegistry) -> Run:
    return regwatch("tags", "--insecure", f"{PUBLIC_REGISTRY}/{REPO}", env=through_proxy(fault))


def credentials_sent_to(fault: FaultRegistry) -> set[str]:
    return {r.headers.get("host", "") for r in fault.seen if r.headers.get("authorization")}


@pytest.mark.parametrize(
    "realm",
    [
        "http://2130706433:{port}/token",
        "http://0x7f.1:{port}/token",
        "http://127.1:{port}/token",
        "http://0177.0.0.1:{port}/token",
        "http://[::ffff:127.0.0.1]:{port}/token",
        "http://[::1]:{port}/token",
        "http://localhost:{port}/token",
        "http://0.0.0.0:{port}/token",
        "http://10.1.2.3/token",
        "http://169.254.169.254/latest/meta-data",
    ],
)
def test_internal_realm_of_a_public_registry_is_refused(fault: FaultRegistry, realm: str) -> None:
    fault.route("GET", "/v2/", bearer_challenge(realm.format(port=fault.port)))

    run = public_tags(fault)

    assert_one_line_error(run, "refusing token realm on private address")
    no_secret(run)
    assert credentials_sent_to(fault) == set()
    assert [r.path for r in fault.seen] == ["/v2/"], "the realm was never asked"


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/steal",
        "http://2130706433:{port}/steal",
        "http://[::ffff:127.0.0.1]:{port}/steal",
        "http://10.0.0.7/steal",
    ],
)
def test_realm_redirect_to_an_internal_address_is_refused(
    fault: FaultRegistry, target: str
) -> None:
    fault.route("GET", "/v2/", bearer_challenge("http://auth.regwatch-test.invalid/token"))
    location = target.format(port=fault.port)
    fault.route("GET", "/token", empty_reply(302, Location=location))

    run = public_tags(fault)

    assert_one_line_error(run, "refusing token realm on private address")
    no_secret(run)
    assert fault.count(path="/steal") == 0
    assert fault.count("GET", TAGS) == 0


def test_credentials_do_not_follow_a_realm_redirect_to_another_host(fault: FaultRegistry) -> None:
    fault.route("GET", "/v2/", bearer_challenge("http://auth.regwatch-test.invalid/token"))
    other = "http://elsewhere.regwatch-test.invalid/issue"
    fault.route("GET", "/token", empty_reply(307, Location=other))
    fault.route("GET", "/issue", json_reply({"token": "t0k3n-value"}))
    fault.route("GET", TAGS, tags_reply(REPO, ["v1"]))

    run = public_tags(fault)

    assert run.code == 0, run
    assert run.stdout.split() == ["v1"]
    assert credentials_sent_to(fault) == {"auth.regwatch-test.invalid", PUBLIC_REGISTRY}
    (issued,) = [r for r in fault.seen if r.path == "/issue"]
    assert "authorization" not in issued.headers


def test_endless_realm_redirects_are_bounded(fault: FaultRegistry) -> None:
    fault.route("GET", "/v2/", bearer_challenge("http://auth.regwatch-test.invalid/token"))
    fault.route("GET", "/token", empty_reply(302, Location="/token"))

    run = public_tags(fault)

    assert_one_line_error(run, "redirects")
    assert fault.count(path="/token") <= 10


def test_loopback_realm_of_a_loopback_registry_is_allowed(fault: FaultRegistry) -> None:
    """Quirk Q20, whatever the realm's spelling."""
    fault.route("GET", "/v2/", bearer_challenge(f"http://0x7f.1:{fault.port}/token"))
    fault.route("GET", "/token", json_reply({"token": "t0k3n-value"}))
    fault.route("GET", TAGS, tags_reply(REPO, ["v1"]))

    run = tags(fault, env=CREDENTIALS)

    assert run.code == 0, run
    assert fault.count(path="/token") == 1


# -- #4: deadlines ---------------------------------------------------------------------------------


FAST = {"REGWATCH_REQUEST_TIMEOUT_SECONDS": "1", "REGWATCH_RETRY_BASE_SECONDS": "0.002"}


@pytest.mark.parametrize("head", [False, True], ids=["body", "head"])
def test_a_trickling_answer_passes_its_deadline(fault: FaultRegistry, head: bool) -> None:
    slow = tags_reply(REPO, ["v1"] * 40)
    fault.route("GET", TAGS, Reply(200, slow.body, slow.headers, trickle=0.05, trickle_head=head))
    started = time.monotonic()

    run = tags(fault, env=FAST)

    assert_fails(run, "no complete answer within 1s", "REGWATCH_REQUEST_TIMEOUT_SECONDS")
    assert time.monotonic() - started < 15
    assert fault.count("GET", TAGS) >= 2, "a passed deadline is retried like a dropped connection"


def test_check_against_a_trickling_registry_ends(
    fault: FaultRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    slow = tags_reply(REPO, ["1.0.0"] * 40)
    fault.route("GET", TAGS, Reply(200, slow.body, slow.headers, trickle=0.05))
    started = time.monotonic()

    run = step("check", {"source": {"repository": f"{fault.host}/{REPO}"}})

    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.code == 1, run
    assert len(errors) == 1, run.stderr
    assert "no complete answer within 1s" in errors[0]
    assert "Traceback" not in run.stderr
    assert time.monotonic() - started < 20


def test_a_trickling_manifest_passes_its_deadline(fault: FaultRegistry) -> None:
    body = b'{"schemaVersion": 2, "padding": "' + b"x" * 200 + b'"}'
    fast = manifest_reply(body)
    path = manifest_path(REPO, "v1")
    fault.route("HEAD", path, empty_reply(500))
    fault.route("GET", path, Reply(200, body, fast.headers, trickle=0.02))

    run = regwatch("digest", f"{fault.host}/{REPO}:v1", env=FAST)

    assert_fails(run, "no complete answer within 1s")


def test_a_deadline_retry_can_succeed(fault: FaultRegistry) -> None:
    slow = tags_reply(REPO, ["v1"] * 40)
    fault.plan("GET", TAGS, Reply(200, slow.body, slow.headers, trickle=0.05))
    fault.route("GET", TAGS, tags_reply(REPO, ["v2"]))

    run = tags(fault, env=FAST)

    assert run.code == 0, run
    assert run.stdout.split() == ["v2"]


@pytest.mark.parametrize(
    "name", ["REGWATCH_REQUEST_TIMEOUT_SECONDS", "REGWATCH_RETRY_BASE_SECONDS"]
)
@pytest.mark.parametrize("value", ["nan", "inf", "-1", "soon", "1e999", "-inf"])
def test_bad_durations_in_the_environment(fault: FaultRegistry, name: str, value: str) -> None:
    run = tags(fault, env={name: value})

    assert_one_line_error(run, name)
    assert fault.seen == []


def test_zero_request_timeout_is_refused(fault: FaultRegistry) -> None:
    assert_one_line_error(
        tags(fault, env={"REGWATCH_REQUEST_TIMEOUT_SECONDS": "0"}),
        "REGWATCH_REQUEST_TIMEOUT_SECONDS",
    )


# -- #7: bounded answers and listings --------------------------------------------------------------


def endless_pages(seen: SeenRequest) -> Reply:
    page = int(seen.query.rpartition("page=")[2] or 0) if "page=" in seen.query else 0
    return tags_reply(REPO, [f"t{page}-{i}" for i in range(50)], next_url=f"{TAGS}?page={page + 1}")


def child_peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def test_endless_pagination_is_bounded(fault: FaultRegistry) -> None:
    fault.route("GET", TAGS, endless_pages)

    run = tags(fault)

    assert_one_line_error(run, "more than 1000 pages")
    assert fault.count("GET", TAGS) == 1000
    assert child_peak_rss_mib() < 256


def test_an_oversize_tag_page_is_refused(fault: FaultRegistry) -> None:
    fault.route("GET", TAGS, tags_reply(REPO, [f"tag-{i:07d}" for i in range(400_000)]))

    run = tags(fault)

    assert_one_line_error(run, "answer larger than 4194304 bytes")
    assert child_peak_rss_mib() < 256


@pytest.mark.parametrize("declared", [None, 1_500_000_000], ids=["chunked", "declared-1.5GB"])
def test_an_oversize_token_answer_is_refused(fault: FaultRegistry, declared: int | None) -> None:
    fault.route("GET", "/v2/", bearer_challenge(f"{fault.url}/token"))
    big = b'{"token": "' + b"t" * (8 * 1024 * 1024) + b'"}'
    fault.route(
        "GET",
        "/token",
        Reply(200, big, {"Content-Type": "application/json"}, declared_length=declared),
    )

    run = tags(fault, env=CREDENTIALS)

    assert_one_line_error(run, "answer larger than 1048576 bytes")
    no_secret(run)
    assert child_peak_rss_mib() < 256


def test_an_oversize_redirect_body_is_not_read_whole(fault: FaultRegistry) -> None:
    path = manifest_path(REPO, "v1")
    fault.route("HEAD", path, empty_reply(500))
    location = {"Location": manifest_path(REPO, "v2"), "Content-Type": "text/html"}
    fault.route("GET", path, Reply(302, b"<p>" * (20 * 1024 * 1024 // 3), location))

    run = regwatch("digest", f"{fault.host}/{REPO}:v1", env=FAST)

    assert_fails(run, "redirect answer larger than 65536 bytes")
    assert fault.count("GET", manifest_path(REPO, "v2")) == 0
    assert child_peak_rss_mib() < 256


# -- #11: strict header numbers --------------------------------------------------------------------


@pytest.mark.parametrize("value", ["²", "1²", "¹", "½", "1e3", "-1", " "])
def test_a_strange_retry_after_is_treated_as_absent(fault: FaultRegistry, value: str) -> None:
    fault.plan("GET", TAGS, rate_limited(value))
    fault.route("GET", TAGS, tags_reply(REPO, ["v1"]))

    run = tags(fault)

    assert run.code == 0, run
    assert run.stdout.split() == ["v1"]


@pytest.mark.parametrize("value", ["²", "¹", "12abc", "-5", "99999999999999999999999"])
def test_a_strange_content_length_on_head_falls_back_to_get(
    fault: FaultRegistry, value: str
) -> None:
    body = b'{"schemaVersion": 2}'
    path = manifest_path(REPO, "v1")
    good = manifest_reply(body)
    headers = {**good.headers, "Content-Length": value}
    fault.route("HEAD", path, Reply(200, b"", headers, send_length=False))
    fault.route("GET", path, good)

    run = regwatch("digest", f"{fault.host}/{REPO}:v1")

    assert run.code == 0, run
    assert run.stdout.strip() == good.headers["Docker-Content-Digest"]
    assert fault.count("GET", path) == 1


# -- #13: a plain-HTTP registry's own answer is the report -----------------------------------------


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        (registry_error(404, "NOT_FOUND", "no api here"), "404"),
        (empty_reply(403), "403"),
        (registry_error(503, "UNAVAILABLE", "down"), "503"),
        (empty_reply(401), "401"),
        (Reply(400, b"bad", {"Content-Type": "text/plain"}), "400"),
    ],
)
def test_plain_http_answer_is_reported_not_the_tls_failure(
    fault: FaultRegistry, answer: Reply, fragment: str
) -> None:
    fault.route("GET", "/v2/", answer)

    run = tags(fault, env=FAST)

    assert_fails(run, f"ping {fault.host}: {fragment}")
    assert "TLS" not in run.stderr


def test_tls_reason_is_kept_when_plain_http_got_nothing() -> None:
    """A server that hangs up on everything: the https attempt's reason is the report."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.1)
        port = listener.getsockname()[1]
        done = threading.Event()

        def hang_up() -> None:
            while not done.is_set():
                with contextlib.suppress(OSError):
                    listener.accept()[0].close()

        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        try:
            run = regwatch("tags", f"127.0.0.1:{port}/{REPO}", env=FAST)
        finally:
            done.set()
            thread.join()

    assert_fails(run, "TLS failed")


# -- #17: Link per the spec ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "link",
    [
        '<{page2}>; rel="next"',
        '<{page2}>; rel="prev"',
        "<{page2}>",
        '<http://{host}{page2}>; rel="last"',
    ],
)
def test_link_is_followed_whatever_its_rel(fault: FaultRegistry, link: str) -> None:
    page2 = f"{TAGS}?last=a"
    header = link.format(page2=page2, host=fault.host)
    fault.plan("GET", f"{TAGS}?n=1000", json_reply({"tags": ["a"]}, headers={"Link": header}))
    fault.plan("GET", page2, tags_reply(REPO, ["b"]))

    run = tags(fault)

    assert run.code == 0, run
    assert run.stdout.split() == ["a", "b"]


@pytest.mark.parametrize("link", ["/v2/x; rel=next", "<unterminated", 'rel="next"', "</a/b"])
def test_a_malformed_link_fails_instead_of_truncating(fault: FaultRegistry, link: str) -> None:
    fault.route("GET", TAGS, json_reply({"tags": ["a"]}, headers={"Link": link}))

    run = tags(fault)

    assert_one_line_error(run, "invalid Link header")


# -- #15: credentials that lack push access --------------------------------------------------------


@pytest.mark.parametrize("push", ["blob", "manifest"])
def test_a_pull_only_user_pushing_is_told_it_lacks_push_access(
    token_registry: RegistryServer, push: str
) -> None:
    """docker-registry answers 401 insufficient_scope to a token without push (not 403)."""
    assert token_registry.token_service is not None
    token_registry.token_service.add_user("reader", "reader-Secret-5", pull_only=True)
    client = RegistryClient(
        token_registry.host, Transport(), StaticCredentials("reader", "reader-Secret-5")
    )
    repository = Repository(token_registry.host, "readonly/app")
    data = b"layer"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    def attempt() -> None:
        if push == "blob":
            client.upload_blob(repository, data, digest, len(data))
        else:
            client.put_manifest(Reference(repository, tag="v1"), b"{}", "application/json")

    with pytest.raises(AuthFailed) as caught:
        attempt()

    message = str(caught.value)
    assert "the credentials lack push access" in message, message
    assert "check username and password" not in message
    assert "reader-Secret-5" not in message


def test_wrong_password_still_says_check_username_and_password(
    token_registry: RegistryServer,
) -> None:
    client = RegistryClient(token_registry.host, Transport(), StaticCredentials("bob", "wrong"))

    with pytest.raises(AuthFailed) as caught:
        client.list_tags(Repository(token_registry.host, "readonly/app"))

    assert "check username and password" in str(caught.value)


# -- #21: --debug shows each step, never a secret --------------------------------------------------


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_logs_each_request_step(fault: FaultRegistry, where: str) -> None:
    fault.route("GET", "/v2/", bearer_challenge(f"{fault.url}/token"))
    fault.route("GET", "/token", json_reply({"token": "t0k3n-value"}))
    fault.plan("GET", TAGS, rate_limited("0"))
    fault.route("GET", TAGS, tags_reply(REPO, ["v1"]))
    target = f"{fault.host}/{REPO}"
    args = ["--debug", "tags", target] if where == "before" else ["tags", "--debug", target]

    run = regwatch(*args, env=CREDENTIALS)

    assert run.code == 0, run
    assert run.stdout.split() == ["v1"]
    lines = run.stderr.splitlines()
    assert all(line.startswith("regwatch: ") for line in lines)
    assert f"regwatch: GET http://{fault.host}/v2/" in lines
    assert any(f"GET http://{fault.host}{TAGS}?n=1000: 429" in line for line in lines)
    assert any(f"GET http://{fault.host}{TAGS}?n=1000: 200" in line for line in lines)
    assert any("retrying" in line for line in lines)
    assert any("fetching a token for repository:team/app:pull" in line for line in lines)
    assert any(f"{fault.host}/token?scope=repository:team/app:pull" in line for line in lines)
    assert "t0k3n-value" not in run.stderr
    no_secret(run)


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_logs_each_step_of_digest(fault: FaultRegistry, where: str) -> None:
    body = b'{"schemaVersion": 2}'
    fault.route("GET", manifest_path(REPO, "v1"), manifest_reply(body))
    target = f"{fault.host}/{REPO}:v1"
    args = ["--debug", "digest", target] if where == "before" else ["digest", "--debug", target]

    run = regwatch(*args, env=CREDENTIALS)

    assert run.code == 0, run
    assert f"regwatch: HEAD http://{fault.host}{manifest_path(REPO, 'v1')}: 200" in run.stderr
    no_secret(run)


def test_without_debug_nothing_is_logged(fault: FaultRegistry) -> None:
    fault.route("GET", TAGS, tags_reply(REPO, ["v1"]))

    run = tags(fault)

    assert run.code == 0
    assert run.stderr == ""

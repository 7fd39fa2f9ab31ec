"""The registry client against the three real docker-registry flavours."""

from __future__ import annotations

import io
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from regwatch.errors import AuthFailed, ConfigError, DigestMismatch, NotFound, TLSFailure
from regwatch.image import mediatypes as mt
from regwatch.net import Transport
from regwatch.refs import Reference, Repository
from regwatch.registry.client import RegistryClient
from regwatch.registry.credentials import StaticCredentials
from tests import images
from tests.registries import RegistryServer

KINDS = ["plain", "tls", "token"]


@pytest.fixture(params=KINDS)
def server(request: pytest.FixtureRequest) -> RegistryServer:
    registry: RegistryServer = request.getfixturevalue(f"{request.param}_registry")
    return registry


def client_for(
    server: RegistryServer,
    *,
    password: str | None = None,
    ca: bool = True,
    transport: Transport | None = None,
) -> RegistryClient:
    credentials = None
    if server.username:
        credentials = StaticCredentials(server.username, password or server.password or "")
    ca_certs = [server.ca_pem] if server.ca_pem and ca else []
    return RegistryClient(server.host, transport or Transport(ca_certs=ca_certs), credentials)


def fresh_repo(server: RegistryServer, prefix: str = "test") -> Repository:
    return Repository(server.host, f"{prefix}/{uuid.uuid4().hex[:12]}")


def test_push_list_resolve_and_pull_round_trip(server: RegistryServer) -> None:
    client = client_for(server)
    repo = fresh_repo(server)
    one, two = images.image("one"), images.image("two", docker=True)

    assert images.push(client, repo, "1.0.0", one) == one.digest
    assert images.push(client, repo, "2.0.0", two) == two.digest

    assert sorted(client.list_tags(repo)) == ["1.0.0", "2.0.0"]
    head = client.resolve(Reference(repo, tag="1.0.0"))
    assert head is not None
    assert (head.digest, head.media_type) == (one.digest, mt.OCI_MANIFEST)
    assert head.size == len(one.manifest.data)
    manifest = client.get_manifest(Reference(repo, tag="2.0.0"))
    assert manifest is not None
    assert manifest.body == two.manifest.data
    assert manifest.descriptor.media_type == mt.DOCKER_MANIFEST_V2
    with client.open_blob(repo, one.layers[0].digest, len(one.layers[0].data)) as blob:
        assert b"".join(blob) == one.layers[0].data


@pytest.mark.parametrize("docker", [False, True], ids=["oci-index", "docker-manifest-list"])
def test_indexes_resolve_to_the_index_digest(plain_registry: RegistryServer, docker: bool) -> None:
    client = client_for(plain_registry)
    repo = fresh_repo(plain_registry)
    amd = images.image("amd", architecture="amd64", docker=docker)
    arm = images.image("arm", architecture="arm64", docker=docker)
    multi = images.index([amd, arm], docker=docker)

    images.push(client, repo, "multi", multi)

    descriptor = client.resolve(Reference(repo, tag="multi"))
    assert descriptor is not None
    assert descriptor.digest == multi.digest
    assert mt.is_index(descriptor.media_type)
    child = client.get_manifest(Reference(repo, digest=arm.digest))
    assert child is not None
    assert child.body == arm.manifest.data


def test_missing_manifest_and_blob_are_absent_not_errors(server: RegistryServer) -> None:
    client = client_for(server)
    repo = fresh_repo(server)
    images.push(client, repo, "present", images.image("present"))

    assert client.resolve(Reference(repo, tag="absent")) is None
    assert client.find_manifest(Reference(repo, tag="absent")) is None
    with pytest.raises(NotFound, match="manifest unknown"):
        client.get_manifest(Reference(repo, tag="absent"))
    assert client.blob_size(repo, images.sha256(b"never pushed")) is None


def test_unknown_repository_is_a_clear_not_found(server: RegistryServer) -> None:
    client = client_for(server)
    repo = fresh_repo(server, "nobody-pushed")
    with pytest.raises(NotFound, match="NAME_UNKNOWN") as info:
        client.list_tags(repo)
    assert str(repo) in str(info.value)


def test_chunked_upload_and_file_upload(server: RegistryServer) -> None:
    client = client_for(server)
    repo = fresh_repo(server)
    data = bytes(range(256)) * 1000
    digest = images.sha256(data)

    assert client.upload_blob(repo, data, digest, len(data), chunk_size=64 * 1024)
    assert client.blob_size(repo, digest) == len(data)
    assert not client.upload_blob(repo, data, digest, len(data)), "second upload must be skipped"

    other = data[::-1]
    other_digest = images.sha256(other)
    assert client.upload_blob(repo, io.BytesIO(other), other_digest, len(other))
    with client.open_blob(repo, other_digest, len(other)) as blob:
        assert blob.read() == other


def test_upload_refuses_bytes_that_do_not_match_their_digest(
    plain_registry: RegistryServer,
) -> None:
    client = client_for(plain_registry)
    with pytest.raises(DigestMismatch, match="expected"):
        client.upload_blob(fresh_repo(plain_registry), b"abc", images.sha256(b"abd"), 3)


def test_cross_repository_mount(server: RegistryServer) -> None:
    client = client_for(server)
    source, target = fresh_repo(server), fresh_repo(server)
    blob = images.layer({"mounted": b"yes"})
    client.upload_blob(source, blob.data, blob.digest, len(blob.data))

    assert client.mount_blob(target, blob.digest, source)
    assert client.blob_size(target, blob.digest) == len(blob.data)
    missing = images.sha256(b"not in the source")
    assert not client.mount_blob(target, missing, source)


def test_skopeo_pushed_images_resolve_to_the_digest_skopeo_reports(
    server: RegistryServer, tmp_path: Path
) -> None:
    """A real tool as witness: skopeo pushes (OCI and Docker schema 2), we resolve."""
    item = images.image("witness")
    layout = images.write_oci_layout(tmp_path / "layout", "v1", item)
    repo = fresh_repo(server, "skopeo")
    images.skopeo_copy(layout, "v1", server, repo.path)
    images.skopeo_copy(layout, "v1", server, f"{repo.path}-v2s2", "--format", "v2s2")
    client = client_for(server)

    for path in (repo.path, f"{repo.path}-v2s2"):
        descriptor = client.resolve(Reference(Repository(server.host, path), tag="v1"))
        assert descriptor is not None
        assert descriptor.digest == images.skopeo_digest(server, f"{path}:v1", tmp_path)
    oci = client.resolve(Reference(repo, tag="v1"))
    assert oci is not None
    assert oci.digest == item.digest


def test_get_by_digest_verifies_the_body(plain_registry: RegistryServer) -> None:
    client = client_for(plain_registry)
    repo = fresh_repo(plain_registry)
    item = images.image("by-digest")
    images.push(client, repo, "t", item)

    manifest = client.get_manifest(Reference(repo, digest=item.digest))
    assert manifest is not None
    assert json.loads(manifest.body)["config"]["digest"] == item.config.digest


@pytest.mark.parametrize("kind", ["tls", "token"])
def test_wrong_password_is_refused_without_leaking_it(
    request: pytest.FixtureRequest, kind: str
) -> None:
    server: RegistryServer = request.getfixturevalue(f"{kind}_registry")
    secret = "definitely-wrong-" + uuid.uuid4().hex
    client = client_for(server, password=secret)
    with pytest.raises(AuthFailed, match="check username and password") as info:
        client.list_tags(fresh_repo(server))
    assert secret not in str(info.value)
    assert "\n" not in str(info.value)


def test_tls_without_the_ca_fails_with_a_hint(tls_registry: RegistryServer) -> None:
    client = client_for(tls_registry, ca=False)
    with pytest.raises(TLSFailure, match=r"certificate verify failed.*ca_certs"):
        client.list_tags(fresh_repo(tls_registry))


def test_ca_certs_win_over_requests_ca_bundle(
    tls_registry: RegistryServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests lets REQUESTS_CA_BUNDLE override a session's verify; ours must still apply."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    client = client_for(tls_registry)
    repo = fresh_repo(tls_registry)
    images.push(client, repo, "ok", images.image("ca"))
    assert client.list_tags(repo) == ["ok"]


def test_a_bad_ca_certificate_is_named_by_index(tls_registry: RegistryServer) -> None:
    good = tls_registry.ca_pem or ""
    with pytest.raises(ConfigError, match=r"ca_certs\[1\]"):
        Transport(
            ca_certs=[good, "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----"]
        )
    with pytest.raises(ConfigError, match=r"ca_certs\[0\] is not a PEM"):
        Transport(ca_certs=["hello"])


def test_anonymous_pull_of_a_public_repository(token_registry: RegistryServer) -> None:
    pusher = client_for(token_registry)
    repo = fresh_repo(token_registry, "public")
    item = images.image("public")
    images.push(pusher, repo, "v1", item)

    anonymous = RegistryClient(token_registry.host, Transport())
    descriptor = anonymous.resolve(Reference(repo, tag="v1"))
    assert descriptor is not None
    assert descriptor.digest == item.digest
    with pytest.raises(AuthFailed):
        anonymous.list_tags(fresh_repo(token_registry, "private"))


def test_tokens_are_cached_per_scope_and_shared_between_threads(
    token_registry: RegistryServer,
) -> None:
    service = token_registry.token_service
    assert service is not None
    client = client_for(token_registry)
    repo = fresh_repo(token_registry)
    tags = [f"t{i}" for i in range(12)]
    item = images.image("cached")
    for tag in tags:
        images.push(client, repo, tag, item)

    reader = client_for(token_registry)
    before = service.tokens_issued
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = list(pool.map(lambda t: reader.resolve(Reference(repo, tag=t)), tags))
    assert all(d is not None and d.digest == item.digest for d in found)
    assert service.tokens_issued - before == 1, "one pull token for 12 concurrent HEADs"


def test_a_rejected_token_is_refreshed_once(token_registry: RegistryServer) -> None:
    service = token_registry.token_service
    assert service is not None
    client = client_for(token_registry)
    repo = fresh_repo(token_registry)
    images.push(client, repo, "v1", images.image("refresh"))

    fresh = client_for(token_registry)
    service.issue_empty_access(1)
    before = service.tokens_issued
    assert fresh.list_tags(repo) == ["v1"]
    assert service.tokens_issued - before == 2, "the useless token, then one refresh"

    again = client_for(token_registry)
    service.issue_empty_access(2)
    with pytest.raises(AuthFailed):
        again.list_tags(repo)
    service.issue_empty_access(0)


def test_request_budget_of_a_tag_listing(server: RegistryServer) -> None:
    """ping + (token) + one tags/list: what a `regwatch tags` call costs the registry.

    Plain-HTTP registries cost one more: the https attempt that fails before the fallback.
    """
    repo = fresh_repo(server)
    images.push(client_for(server), repo, "v1", images.image("budget"))
    transport = Transport(ca_certs=[server.ca_pem] if server.ca_pem else [])
    client = client_for(server, transport=transport)

    assert client.list_tags(repo) == ["v1"]
    expected = {"plain": 3, "tls": 2, "token": 4}[server.kind]
    assert transport.requests_sent == expected


def test_connection_is_reused_across_threads(plain_registry: RegistryServer) -> None:
    client = client_for(plain_registry)
    repo = fresh_repo(plain_registry)
    item = images.image("threads")
    images.push(client, repo, "v1", item)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(20):
                found = client.resolve(Reference(repo, tag="v1"))
                assert found is not None
                assert found.digest == item.digest
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

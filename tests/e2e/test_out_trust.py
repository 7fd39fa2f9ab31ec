"""`regwatch out` with `content_trust`: pushed, signed into a real notary-server, and listed by
the real `notary` client (not our code) with each tag's manifest digest and size (§6.7, Q14)."""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from regwatch.image import mediatypes as mt
from regwatch.refs import Reference, Repository
from tests import images
from tests.e2e.steps import Run, assert_fails, client_for, step
from tests.notary import KEY_PASSPHRASE, NotaryClient, NotaryServer
from tests.processes import free_port
from tests.registries import RegistryServer, require_tool, write_tls_files


@pytest.fixture
def notary(notary_server: NotaryServer, tmp_path: Path) -> NotaryClient:
    return NotaryClient(require_tool("notary"), notary_server, tmp_path / "notary-trust")


def fresh(registry: RegistryServer) -> str:
    return f"{registry.host}/trust/{uuid.uuid4().hex[:10]}"


def reference(repository: str, tag: str) -> Reference:
    host, _, path = repository.partition("/")
    return Reference(Repository(host, path), tag=tag)


def hex_of(blob: images.Blob) -> str:
    return blob.digest.removeprefix("sha256:")


def layout_of(directory: Path, item: images.Image | images.Index) -> str:
    """An OCI layout below `directory` that `out` pushes as `item`; its name for
    `params.image`."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    children = item.images if isinstance(item, images.Index) else (item,)
    parts = [item.manifest, *(b for c in children for b in (c.manifest, c.config, *c.layers))]
    for blob in parts:
        (blobs / hex_of(blob)).write_bytes(blob.data)
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entry = item.manifest.descriptor(annotations={"org.opencontainers.image.ref.name": "x"})
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [entry]}
    (directory / "index.json").write_text(json.dumps(index))
    if isinstance(item, images.Image):
        (directory / "single-image-digest").write_text(item.digest)
    return directory.name


def trust(notary_server: NotaryServer, key: str, **extra: Any) -> dict[str, Any]:
    return {
        "server": notary_server.url,
        "repository_key": key,
        "repository_passphrase": KEY_PASSPHRASE,
        **extra,
    }


def put(
    repository: str,
    directory: Path,
    item: images.Image | images.Index,
    content_trust: dict[str, Any],
    ca_pem: str,
    *,
    layout: str = "one",
    debug: bool = False,
    **params: Any,
) -> Run:
    """`out` from `directory`, pushing `item` from the layout `directory/layout`."""
    source = {
        "repository": repository,
        "ca_certs": [ca_pem],
        "content_trust": content_trust,
        "debug": debug,
    }
    image = layout_of(directory / layout, item)
    return step("out", {"source": source, "params": {"image": image, **params}}, directory)


def signed(item: images.Image | images.Index, role: str = "targets") -> tuple[str, int, str]:
    """How `notary list` shows `item` signed under a tag by `role`."""
    return (hex_of(item.manifest), len(item.manifest.data), role)


def test_a_pushed_image_is_signed_under_each_tag(
    plain_registry: RegistryServer, notary: NotaryClient, tmp_path: Path
) -> None:
    item = images.image("signed-one")
    repository = fresh(plain_registry)
    key = notary.generate_key()

    run = put(
        repository,
        tmp_path,
        item,
        trust(notary.server, key),
        notary.server.ca_pem,
        version="1.2.3",
    )

    assert run.code == 0, run.stderr
    assert run.answer["version"]["digest"] == item.digest
    assert "signing image with tag: 1.2.3" in run.stderr
    assert notary.targets(repository) == {"1.2.3": signed(item)}


def test_an_index_is_signed_as_the_index(
    plain_registry: RegistryServer, notary: NotaryClient, tmp_path: Path
) -> None:
    multi = images.index([images.image("ts-amd"), images.image("ts-arm", architecture="arm64")])
    repository = fresh(plain_registry)

    run = put(
        repository,
        tmp_path,
        multi,
        trust(notary.server, notary.generate_key()),
        notary.server.ca_pem,
        version="2.0.0",
        bump_aliases=True,
    )

    assert run.code == 0, run.stderr
    tags = ("2.0.0", "2.0", "2", "latest")
    assert notary.targets(repository) == dict.fromkeys(tags, signed(multi))


def test_a_second_put_re_signs_the_collection(
    plain_registry: RegistryServer, notary: NotaryClient, tmp_path: Path
) -> None:
    """Another tag is added and a moved tag replaced; what the first put signed stays."""
    first, second = images.image("resign-1"), images.image("resign-2")
    repository = fresh(plain_registry)
    content_trust = trust(notary.server, notary.generate_key())
    ca = notary.server.ca_pem
    (tmp_path / "first-tags").write_text("old")
    (tmp_path / "second-tags").write_text("edge")
    first_put = put(
        repository,
        tmp_path,
        first,
        content_trust,
        ca,
        version="1.0.0",
        additional_tags="first-tags",
    )
    assert first_put.code == 0, first_put.stderr

    run = put(
        repository,
        tmp_path,
        second,
        content_trust,
        ca,
        layout="two",
        version="1.0.0",
        additional_tags="second-tags",
    )

    assert run.code == 0, run.stderr
    moved = signed(second)
    assert notary.targets(repository) == {"old": signed(first), "1.0.0": moved, "edge": moved}


def test_a_collection_made_by_notary_is_signed_with_its_targets_key(
    plain_registry: RegistryServer, notary: NotaryClient, tmp_path: Path
) -> None:
    """The key is the trust directory's `private/<id>.key`, as docker keeps it."""
    item = images.image("existing")
    repository = fresh(plain_registry)
    key = notary.initialise(repository)
    notary.run("addhash", repository, "theirs", "3", "--sha256", "ab" * 32)
    notary.run("publish", repository)

    run = put(
        repository,
        tmp_path,
        item,
        trust(notary.server, key),
        notary.server.ca_pem,
        version="3.1.4",
    )

    assert run.code == 0, run.stderr
    assert notary.targets(repository) == {
        "theirs": ("ab" * 32, 3, "targets"),
        "3.1.4": signed(item),
    }


def test_a_delegation_key_signs_into_its_delegation(
    plain_registry: RegistryServer, notary: NotaryClient, tmp_path: Path
) -> None:
    item = images.image("delegated")
    repository = fresh(plain_registry)
    notary.initialise(repository)
    pair = notary.generate_key_pair("targets/releases")
    notary.run("delegation", "add", repository, "targets/releases", f"{pair}.pem", "--all-paths")
    notary.run("publish", repository)
    key = Path(f"{pair}-key.pem").read_text()

    run = put(
        repository,
        tmp_path,
        item,
        trust(notary.server, key),
        notary.server.ca_pem,
        version="1.0.0",
    )

    assert run.code == 0, run.stderr
    assert notary.targets(repository) == {"1.0.0": signed(item, "targets/releases")}


def test_a_key_the_collection_does_not_name_fails_the_put(
    plain_registry: RegistryServer, notary: NotaryClient, tmp_path: Path
) -> None:
    repository = fresh(plain_registry)
    notary.initialise(repository)

    run = put(
        repository,
        tmp_path,
        images.image("stranger"),
        trust(notary.server, notary.generate_key()),
        notary.server.ca_pem,
        version="1.0.0",
    )

    assert_fails(
        run,
        "error: pushing image failed: signing image(s): repository key",
        f"may not sign tag 1.0.0 in {repository}",
    )
    assert notary.targets(repository) == {}


def test_a_wrong_passphrase_fails_before_anything_is_pushed(
    plain_registry: RegistryServer, notary: NotaryClient, tmp_path: Path
) -> None:
    repository = fresh(plain_registry)
    content_trust = trust(
        notary.server, notary.generate_key(), repository_passphrase="not the passphrase"
    )

    run = put(
        repository,
        tmp_path,
        images.image("wrong-pass"),
        content_trust,
        notary.server.ca_pem,
        version="1.0.0",
    )

    assert_fails(
        run,
        "error: pushing image failed: signing image(s): repository_key: cannot decrypt it; "
        "check repository_passphrase",
    )
    assert "not the passphrase" not in run.stderr
    assert client_for(plain_registry).resolve(reference(repository, "1.0.0")) is None


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ("down", "connection refused"),
        ("http://127.0.0.1:1", "valid https URL required for trust server, got http://127.0.0.1:1"),
    ],
)
def test_an_unreachable_or_invalid_server_fails_the_put(
    plain_registry: RegistryServer, notary: NotaryClient, tmp_path: Path, server: str, message: str
) -> None:
    url = f"https://127.0.0.1:{free_port()}" if server == "down" else server
    content_trust = trust(notary.server, notary.generate_key(), server=url)

    run = put(
        fresh(plain_registry),
        tmp_path,
        images.image("no-server"),
        content_trust,
        notary.server.ca_pem,
        version="1.0.0",
    )

    assert_fails(run, "error: pushing image failed: signing image(s): ", message)


def test_the_notary_certificate_is_verified_against_ca_certs(
    plain_registry: RegistryServer, notary: NotaryClient, tmp_path: Path
) -> None:
    """Quirk Q14: the Go resource skipped this verification; regwatch does not."""
    (tmp_path / "other-ca").mkdir()
    other_ca = write_tls_files(tmp_path / "other-ca").ca_pem

    run = put(
        fresh(plain_registry),
        tmp_path,
        images.image("untrusted"),
        trust(notary.server, notary.generate_key()),
        other_ca,
        version="1.0.0",
    )

    assert_fails(run, "signing image(s): ", "certificate verify failed")


@pytest.fixture
def token_notary(token_notary_server: NotaryServer, tmp_path: Path) -> NotaryClient:
    return NotaryClient(require_tool("notary"), token_notary_server, tmp_path / "notary-trust")


@pytest.mark.parametrize("where", ["content_trust", "source"])
def test_a_token_for_the_collection_is_asked_with_the_credentials(
    plain_registry: RegistryServer, token_notary: NotaryClient, tmp_path: Path, where: str
) -> None:
    """content_trust's username/password, else the source's, as the Go resource takes them."""
    server = token_notary.server
    assert server.token_service is not None
    item = images.image(f"token-{where}")
    repository = fresh(plain_registry)
    login = {"username": server.username, "password": server.password}
    content_trust = trust(server, token_notary.generate_key())
    source: dict[str, Any] = {
        "repository": repository,
        "ca_certs": [server.ca_pem],
        "content_trust": content_trust,
    }
    if where == "content_trust":
        content_trust.update(login)
    else:
        source.update(login)
    server.token_service.reset()

    run = step(
        "out",
        {
            "source": source,
            "params": {"image": layout_of(tmp_path / "one", item), "version": "1.0.0"},
        },
        tmp_path,
    )

    asked = {scope for seen in server.token_service.requests_seen for scope in scopes(seen.query)}
    assert run.code == 0, run.stderr
    assert token_notary.targets(repository) == {"1.0.0": signed(item)}
    assert asked == {f"repository:{repository}:push,pull"}
    assert str(server.password) not in run.stderr


def scopes(query: str) -> list[str]:
    return parse_qs(query).get("scope", [])


def test_refused_credentials_fail_the_put(
    plain_registry: RegistryServer, token_notary: NotaryClient, tmp_path: Path
) -> None:
    server = token_notary.server
    content_trust = trust(
        server, token_notary.generate_key(), username=server.username, password="wrong"
    )

    run = put(
        fresh(plain_registry),
        tmp_path,
        images.image("refused"),
        content_trust,
        server.ca_pem,
        version="1.0.0",
    )

    assert_fails(run, "signing image(s): ", "401 unauthorized")


@pytest.mark.parametrize("presented", [True, False])
def test_a_client_certificate_is_presented_to_the_notary_server(
    plain_registry: RegistryServer,
    client_cert_notary_server: NotaryServer,
    tmp_path: Path,
    presented: bool,
) -> None:
    server = client_cert_notary_server
    assert server.client_certificate is not None
    notary = NotaryClient(require_tool("notary"), server, tmp_path / "notary-trust")
    item = images.image("client-cert")
    repository = fresh(plain_registry)
    cert, key = server.client_certificate
    extra = {"tls_cert": cert, "tls_key": key} if presented else {}

    signing_key = notary.generate_key()

    run = put(
        repository,
        tmp_path,
        item,
        trust(server, signing_key, **extra),
        server.ca_pem,
        debug=True,
        version="1.0.0",
    )

    for secret in (KEY_PASSPHRASE, key.splitlines()[1], signing_key.splitlines()[-2]):
        assert secret not in run.stderr
    if presented:
        assert run.code == 0, run.stderr
        assert notary.targets(repository) == {"1.0.0": signed(item)}
        assert not list(Path(tempfile.gettempdir()).glob("regwatch-client-*"))
    else:
        assert_fails(run, "signing image(s): ", "TLS")


def test_a_collection_whose_snapshot_key_a_client_holds_fails_the_put(
    plain_registry: RegistryServer, notary: NotaryClient, tmp_path: Path
) -> None:
    """notary's default (without `key rotate … snapshot -r`): the server cannot sign a
    snapshot for our targets, refuses the update, and the put says what to do."""
    repository = fresh(plain_registry)
    key = notary.initialise(repository, server_snapshot=False)

    run = put(
        repository,
        tmp_path,
        images.image("client-snapshot"),
        trust(notary.server, key),
        notary.server.ca_pem,
        version="1.0.0",
    )

    assert_fails(
        run,
        "signing image(s): publish targets of",
        ": 400 invalid_update",
        f"`notary key rotate {repository} snapshot -r`",
    )

"""ACR sources through `check`, `in` and `out`: a managed identity (App Service style) and ACR's
token endpoints played by `tests.acrfake`, in front of a real docker-registry."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regwatch.refs import Reference, Repository
from tests import images
from tests.acrfake import AcrFake
from tests.e2e.steps import assert_fails, client_for, step
from tests.registries import RegistryServer


@pytest.fixture
def acr(plain_registry: RegistryServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[AcrFake]:
    fake = AcrFake(backend=plain_registry.host).start()
    monkeypatch.setenv("IDENTITY_ENDPOINT", fake.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", fake.identity_header)
    for name in ("MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT", "AZURE_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    try:
        yield fake
    finally:
        fake.stop()


def seeded(server: RegistryServer, tag: str) -> tuple[str, images.Image]:
    name = f"acr/{uuid.uuid4().hex[:10]}"
    item = images.image(f"{name}-{tag}")
    images.push(client_for(server), Repository(server.host, name), tag, item)
    return name, item


def source(fake: AcrFake, name: str, **extra: Any) -> dict[str, Any]:
    return {"repository": f"{fake.host}/{name}", "azure_acr": True, "insecure": True, **extra}


def assert_no_secret(fake: AcrFake, stderr: str) -> None:
    for secret in (fake.aad_token, fake.refresh_token, fake.access_token, fake.identity_header):
        assert secret not in stderr


def test_managed_identity_check_in_out(
    acr: AcrFake, plain_registry: RegistryServer, tmp_path: Path
) -> None:
    name, item = seeded(plain_registry, "1.0.0")
    acr_source = source(acr, name, azure_client_id="my-identity")

    checked = step("check", {"source": acr_source})
    assert checked.code == 0, checked.stderr
    assert checked.answer == [{"tag": "1.0.0", "digest": item.digest}]
    assert acr.identity_requests[0]["client_id"] == ["my-identity"]
    assert acr.identity_requests[0]["resource"] == ["https://management.azure.com"]
    assert acr.exchanges[0]["tenant"] == [acr.tenant]

    got = step(
        "in",
        {"source": acr_source, "version": {"tag": "1.0.0", "digest": item.digest}},
        tmp_path / "got",
    )
    assert got.code == 0, got.stderr
    assert (tmp_path / "got/repository").read_text() == f"{acr.host}/{name}"
    assert (tmp_path / "got/digest").read_text() == item.digest

    images.write_oci_layout(tmp_path / "put/img", "v", images.image(f"{name}-pushed"))
    put = step(
        "out",
        {"source": {**acr_source, "tag": "edge"}, "params": {"image": "img"}},
        tmp_path / "put",
    )
    assert put.code == 0, put.stderr
    pushed = client_for(plain_registry).resolve(
        Reference(Repository(plain_registry.host, name), tag="edge")
    )
    assert pushed is not None
    assert put.answer["version"] == {"tag": "edge", "digest": pushed.digest}
    for run in (checked, got, put):
        assert_no_secret(acr, run.stderr)


def test_a_given_tenant_skips_the_challenge(acr: AcrFake, plain_registry: RegistryServer) -> None:
    name, item = seeded(plain_registry, "2.0.0")
    run = step(
        "check",
        {"source": source(acr, name, azure_tenant_id=acr.tenant, azure_environment="AzureChina")},
    )
    assert run.code == 0, run.stderr
    assert run.answer == [{"tag": "2.0.0", "digest": item.digest}]
    assert acr.identity_requests[0]["resource"] == ["https://management.chinacloudapi.cn"]
    assert "client_id" not in acr.identity_requests[0]
    assert acr.challenges == 1, "only the registry client's own ping"


def test_a_wrong_tenant_fails_the_exchange_with_a_hint(
    acr: AcrFake, plain_registry: RegistryServer
) -> None:
    name, _ = seeded(plain_registry, "1")
    run = step("check", {"source": source(acr, name, azure_tenant_id="someone-else")})
    assert_fails(
        run,
        "cannot authenticate with ACR: ACR token exchange returned status 401:",
        "bad exchange",
        "azure_tenant_id must be the tenant of the registry",
    )
    assert_no_secret(acr, run.stderr)


@pytest.mark.parametrize("name", ["check", "in", "out"])
def test_a_refused_identity_is_one_line(
    acr: AcrFake, monkeypatch: pytest.MonkeyPatch, name: str, tmp_path: Path
) -> None:
    monkeypatch.setenv("IDENTITY_HEADER", "wrong")
    request: dict[str, Any] = {
        "source": source(acr, "acr/app", tag="1"),
        **{
            "check": {},
            "in": {"version": {"tag": "1", "digest": "sha256:" + "0" * 64}},
            "out": {"params": {"image": "img"}},
        }[name],
    }
    run = step(name, request, None if name == "check" else tmp_path)
    assert_fails(run, "cannot authenticate with ACR: failed to acquire Azure AD token:")
    assert run.stderr.count("\n") == 1, "azure-identity's own warnings stay quiet"
    assert acr.exchanges == []


def test_an_identity_endpoint_that_is_down(acr: AcrFake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token")
    run = step("check", {"source": source(acr, "acr/app")})
    assert_fails(run, "cannot authenticate with ACR: failed to acquire Azure AD token:")

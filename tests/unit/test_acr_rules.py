"""ACR's pure rules (spec §5.4): which cloud a registry is in, and the tenant of a challenge."""

from __future__ import annotations

import logging

import pytest

from regwatch.registry.acr import challenge_tenant, cloud_of


@pytest.mark.parametrize(
    ("host", "environment", "cloud"),
    [
        ("myregistry.azurecr.io", None, "AzurePublic"),
        ("myregistry.azurecr.us", None, "AzureGovernment"),
        ("myregistry.azurecr.cn", None, "AzureChina"),
        ("MyRegistry.AzureCR.US", None, "AzureGovernment"),
        ("myregistry.azurecr.us:443", None, "AzureGovernment"),
        ("registry.example.com", None, "AzurePublic"),
        ("myregistry.azurecr.io", "AzureChina", "AzureChina"),
        ("myregistry.azurecr.cn", "AzurePublic", "AzurePublic"),
        ("myregistry.azurecr.us", "AzureGovernment", "AzureGovernment"),
        ("myregistry.azurecr.cn", "Mars", "AzureChina"),
        ("myregistry.azurecr.io", "azurepublic", "AzurePublic"),
    ],
)
def test_cloud_of(host: str, environment: str | None, cloud: str) -> None:
    assert cloud_of(host, environment) == cloud


def test_an_unknown_environment_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="regwatch"):
        assert cloud_of("r.azurecr.us", "Mars") == "AzureGovernment"
    assert caplog.messages == ['unknown azure_environment "Mars", falling back to auto-detection']


@pytest.mark.parametrize(
    ("header", "tenant"),
    [
        ('Bearer realm="https://r.azurecr.io/oauth2/token",tenant="t-1"', "t-1"),
        ("Bearer realm=x&tenant=t-2&other=y", "t-2"),
        ('Bearer realm="https://r.azurecr.io/oauth2/token",service="r.azurecr.io"', "common"),
        ('bearer tenant="t-3"', "common"),
        ('Basic realm="x",tenant="t-4"', "common"),
        ("", "common"),
        ('Bearer tenant=""', "common"),
    ],
)
def test_challenge_tenant(header: str, tenant: str) -> None:
    assert challenge_tenant(header) == tenant

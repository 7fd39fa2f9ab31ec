"""`EcrLogin` against moto: the token is cached, renewed shortly before it expires, and after a 401.

moto's `expiresAt` lies in 2015; a past expiry means "unknown", and the default lifetime applies.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from regwatch.errors import CloudLoginFailed
from regwatch.registry import ecr
from regwatch.registry.ecr import (
    DEFAULT_LIFETIME,
    RENEW_BEFORE,
    EcrLogin,
    EcrSettings,
    token_expiry,
)
from tests.cloud import MotoServer, start_moto

NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch, moto: MotoServer, tmp_path: Path) -> list[int]:
    """moto for ECR and STS; counts the sessions `EcrLogin` opens (one per token fetch)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", moto.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto.url)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    counted: list[int] = []
    real = ecr._session

    def counting(settings: EcrSettings, assumed: Any = None) -> Any:
        if assumed is None:
            counted.append(1)
        return real(settings, assumed)

    monkeypatch.setattr(ecr, "_session", counting)
    return counted


SETTINGS = EcrSettings(region="us-east-1", access_key_id="AKIAEXAMPLE", secret_access_key="s")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def test_the_token_is_fetched_once_and_reused(fetches: list[int]) -> None:
    login = EcrLogin(SETTINGS, Clock())
    first = login.current()
    assert first.username == "AWS"
    assert first.password == "123456789012-auth-token"
    assert login.current() == first
    assert login.registry() == "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    assert fetches == [1]
    assert "auth-token" not in repr(first)


def test_a_past_expiry_means_the_default_lifetime(fetches: list[int]) -> None:
    clock = Clock()
    login = EcrLogin(SETTINGS, clock)
    login.current()
    clock.now += DEFAULT_LIFETIME - RENEW_BEFORE - 1
    login.current()
    assert len(fetches) == 1
    clock.now += 2
    login.current()
    assert len(fetches) == 2


def test_a_refused_token_is_renewed_once_per_refusal(fetches: list[int]) -> None:
    """A token that expired mid-poll: the client's 401 asks for a new one."""
    login = EcrLogin(SETTINGS, Clock())
    login.current()
    assert login.refresh() is True
    login.current()
    assert len(fetches) == 2


def test_a_role_chain_ends_in_the_last_account(fetches: list[int]) -> None:
    login = EcrLogin(
        EcrSettings(
            region="us-east-1",
            access_key_id="AKIAEXAMPLE",
            secret_access_key="s",
            role_arns=(
                "arn:aws:iam::111111111111:role/first",
                "arn:aws:iam::333333333333:role/second",
            ),
        ),
        Clock(),
    )
    assert login.current().password == "333333333333-auth-token"
    assert login.registry() == "333333333333.dkr.ecr.us-east-1.amazonaws.com"
    assert EcrLogin(
        EcrSettings(region="eu-north-1", account_id="444444444444"), Clock()
    ).registry() == ("444444444444.dkr.ecr.eu-north-1.amazonaws.com")


def test_an_expiry_ahead_is_trusted() -> None:
    twelve_hours = datetime.fromtimestamp(NOW, UTC) + timedelta(hours=12)
    assert token_expiry(twelve_hours, NOW) == NOW + 12 * 3600
    assert token_expiry(datetime(2015, 1, 1, tzinfo=UTC), NOW) == NOW + DEFAULT_LIFETIME
    assert token_expiry(None, NOW) == NOW + DEFAULT_LIFETIME


def test_no_secret_in_a_failure(
    fetches: list[int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    secret = EcrSettings(
        region="us-east-1",
        access_key_id="AKIAEXAMPLE",
        secret_access_key="do-not-print",
        session_token="nor-this",
    )
    with pytest.raises(CloudLoginFailed) as failed:
        EcrLogin(secret, Clock()).current()
    message = str(failed.value)
    assert message.startswith("cannot authenticate with ECR: failed to authenticate to ECR: ")
    assert "do-not-print" not in message
    assert "nor-this" not in message
    assert "\n" not in message

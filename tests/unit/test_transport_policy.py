from __future__ import annotations

from pathlib import Path

import pytest

from regwatch.errors import ConfigError
from regwatch.net import (
    Transport,
    header_int,
    is_transient_status,
    loggable_url,
    retry_after_seconds,
    system_roots,
)
from regwatch.retrying import RetryPolicy, request_timeout_from_env


def test_default_schedule_is_the_go_resources() -> None:
    policy = RetryPolicy.from_env({})
    assert (policy.base, policy.multiplier, policy.max_interval, policy.budget) == (
        5.0,
        1.5,
        300.0,
        3600.0,
    )
    no_jitter = [policy.interval(n, rand=lambda: 0.5) for n in range(12)]
    assert no_jitter[:4] == [5.0, 7.5, 11.25, 16.875]
    assert no_jitter[-1] == 300.0, "capped at five minutes"


def test_jitter_stays_within_half_either_side() -> None:
    policy = RetryPolicy()
    assert policy.interval(0, rand=lambda: 0.0) == 2.5
    assert policy.interval(0, rand=lambda: 1.0) == 7.5


def test_base_from_environment_scales_the_schedule() -> None:
    policy = RetryPolicy.from_env({"REGWATCH_RETRY_BASE_SECONDS": "0.01"})
    assert (policy.base, policy.max_interval, policy.budget) == (0.01, 0.6, 7.2)


@pytest.mark.parametrize("raw", ["fast", "-1"])
def test_bad_base_is_a_config_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="REGWATCH_RETRY_BASE_SECONDS"):
        RetryPolicy.from_env({"REGWATCH_RETRY_BASE_SECONDS": raw})


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("120", 120.0),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
    ],
)
def test_retry_after_header(value: str | None, seconds: float | None) -> None:
    now = 1445412480.0  # 2015-10-21 07:28:00 UTC
    assert retry_after_seconds(value, now=lambda: now) == seconds


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (200, False),
        (404, False),
        (401, False),
        (408, True),
        (429, True),
        (500, True),
        (501, False),
        (502, True),
        (503, True),
        (504, True),
        (505, False),
    ],
)
def test_transient_statuses(status: int, transient: bool) -> None:
    assert is_transient_status(status) is transient


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "1e999", "NaN", "-0.5"])
def test_unusable_base_is_a_config_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="REGWATCH_RETRY_BASE_SECONDS"):
        RetryPolicy.from_env({"REGWATCH_RETRY_BASE_SECONDS": raw})


@pytest.mark.parametrize(
    ("raw", "seconds"), [(None, 60.0), ("", 60.0), ("5", 5.0), ("0.25", 0.25), (" 90 ", 90.0)]
)
def test_request_timeout_from_environment(raw: str | None, seconds: float) -> None:
    environ = {} if raw is None else {"REGWATCH_REQUEST_TIMEOUT_SECONDS": raw}
    assert request_timeout_from_env(environ) == seconds


@pytest.mark.parametrize("raw", ["0", "-1", "nan", "inf", "1e999", "soon", "1s"])
def test_unusable_request_timeout_is_a_config_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="REGWATCH_REQUEST_TIMEOUT_SECONDS") as caught:
        request_timeout_from_env({"REGWATCH_REQUEST_TIMEOUT_SECONDS": raw})
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("value", ["²", "1²", "¹", "٣", "½", "1e3", "-1", "1.5", "0x10", "+3"])
def test_retry_after_takes_ascii_digits_only(value: str) -> None:
    assert retry_after_seconds(value) is None


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("0", 0),
        ("1234", 1234),
        (" 42 ", 42),
        ("²", None),
        ("٣", None),
        ("-5", None),
        ("", None),
        (None, None),
        ("1" * 40, None),
        ("12abc", None),
    ],
)
def test_header_int(value: str | None, number: int | None) -> None:
    assert header_int(value) == number


@pytest.mark.parametrize(
    ("url", "params", "logged"),
    [
        ("https://r.io/v2/a/tags/list?n=1000", None, "https://r.io/v2/a/tags/list?n=1000"),
        ("https://u:pw@r.io/v2/", None, "https://r.io/v2/"),
        (
            "https://r.io/v2/a/blobs/uploads/x?_state=SECRET&digest=sha256:ab",
            None,
            "https://r.io/v2/a/blobs/uploads/x?_state=…&digest=sha256:ab",
        ),
        (
            "https://auth.io/token",
            {"scope": ["repository:a:pull"], "service": "s", "account": "bob"},
            "https://auth.io/token?scope=repository:a:pull&service=s&account=…",
        ),
    ],
)
def test_loggable_url_hides_what_can_be_secret(
    url: str, params: dict[str, str | list[str]] | None, logged: str
) -> None:
    assert loggable_url(url, params) == logged


def test_the_system_roots_are_a_hashed_directory_read_as_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed = tmp_path / "hashed"
    hashed.mkdir()
    (hashed / "5ad8a5d6.0").write_text("-----BEGIN CERTIFICATE-----\n")
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", str(hashed))
    assert system_roots() == str(hashed)

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("SSL_CERT_DIR", str(plain))
    assert system_roots() is True, "an unhashed directory is no store: requests' bundle is"


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_a_bundle_the_environment_names_wins(
    variable: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv(variable, str(bundle))
    assert system_roots() == str(bundle)
    assert Transport().verify == str(bundle)

from __future__ import annotations

import pytest

from regwatch.registry.auth import Challenge, parse_challenges, preferred_challenge
from regwatch.registry.credentials import Credentials


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('Basic realm="Registry Realm"', [Challenge("basic", {"realm": "Registry Realm"})]),
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/alpine:pull"',
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "https://auth.docker.io/token",
                        "service": "registry.docker.io",
                        "scope": "repository:library/alpine:pull",
                    },
                )
            ],
        ),
        (
            'Bearer realm="https://a/token", service="s", error="insufficient_scope"',
            [
                Challenge(
                    "bearer",
                    {"realm": "https://a/token", "service": "s", "error": "insufficient_scope"},
                )
            ],
        ),
        (
            "bearer realm=https://a/t,service=s",
            [Challenge("bearer", {"realm": "https://a/t", "service": "s"})],
        ),
        (
            'Negotiate abc, Basic realm="r", Bearer realm="https://x/t"',
            [
                Challenge("negotiate", {}),
                Challenge("basic", {"realm": "r"}),
                Challenge("bearer", {"realm": "https://x/t"}),
            ],
        ),
        ('Basic realm="say \\"hi\\""', [Challenge("basic", {"realm": 'say "hi"'})]),
        ("", []),
    ],
)
def test_parse_challenges(header: str, expected: list[Challenge]) -> None:
    assert parse_challenges(header) == expected


def test_bearer_is_preferred_over_basic() -> None:
    chosen = preferred_challenge('Basic realm="r", Bearer realm="https://x/t"')
    assert chosen is not None
    assert chosen.scheme == "bearer"
    assert preferred_challenge("Negotiate abc") is None


def test_challenge_scopes() -> None:
    challenge = parse_challenges(
        'Bearer realm="https://x",scope="repository:a:pull repository:b:pull"'
    )[0]
    assert challenge.scopes == ("repository:a:pull", "repository:b:pull")


def test_credentials_never_show_the_password() -> None:
    credentials = Credentials("alice", "s3cret")
    assert "s3cret" not in repr(credentials)
    assert credentials.basic() == "Basic YWxpY2U6czNjcmV0"

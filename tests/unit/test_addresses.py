from __future__ import annotations

import ipaddress

import pytest

from regwatch.registry.addresses import is_internal, is_local, parse, resolve

LOOPBACK = ipaddress.IPv4Address("127.0.0.1")


@pytest.mark.parametrize(
    "spelling",
    ["127.0.0.1", "2130706433", "0x7f.1", "127.1", "0177.0.0.1", "0x7f000001", "localhost"],
)
def test_every_spelling_of_loopback_is_loopback(spelling: str) -> None:
    assert LOOPBACK in resolve(spelling)


@pytest.mark.parametrize("spelling", ["[::ffff:127.0.0.1]", "::ffff:127.0.0.1", "::ffff:7f00:1"])
def test_ipv4_in_ipv6_is_the_ipv4_address(spelling: str) -> None:
    assert resolve(spelling) == {LOOPBACK}


@pytest.mark.parametrize("name", ["nowhere.invalid", "", "a\x00b", "[", "..", "-x-"])
def test_a_name_that_does_not_resolve_has_no_addresses(name: str) -> None:
    assert resolve(name) == frozenset()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("::ffff:10.0.0.1", "10.0.0.1"),
        ("64:ff9b::7f00:1", "127.0.0.1"),
        ("fe80::1%eth0", "fe80::1"),
        ("not an address", None),
    ],
)
def test_parse_as_a_socket_reports_it(text: str, expected: str | None) -> None:
    address = parse(text)
    assert (str(address) if address else None) == expected


@pytest.mark.parametrize(
    ("address", "internal", "local"),
    [
        ("127.0.0.1", True, True),
        ("127.8.9.10", True, True),
        ("0.0.0.0", True, True),
        ("::1", True, True),
        ("::", True, True),
        ("10.1.2.3", True, False),
        ("172.16.0.1", True, False),
        ("192.168.1.1", True, False),
        ("169.254.169.254", True, False),
        ("100.64.0.1", True, False),
        ("fd00::1", True, False),
        ("fe80::1", True, False),
        ("fec0::1", True, False),
        ("224.0.0.1", True, False),
        ("240.0.0.1", True, False),
        ("8.8.8.8", False, False),
        ("2001:4860:4860::8888", False, False),
    ],
)
def test_internal_and_local(address: str, internal: bool, local: bool) -> None:
    parsed = parse(address)
    assert parsed is not None
    assert is_internal(parsed) is internal
    assert is_local(parsed) is local

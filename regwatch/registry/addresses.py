"""Where a host really leads: the addresses the socket layer would connect to, and which are ours.

A host is judged by what `getaddrinfo` makes of it, as the connection itself will, so every
spelling of one address is one address: `2130706433`, `0x7f.1`, `127.1`, `[::ffff:127.0.0.1]`
and a DNS name that resolves to loopback are all 127.0.0.1. A name that does not resolve here
has no addresses, which the realm guard counts as public (behind a proxy the proxy resolves it).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Final

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


def resolve(host: str) -> frozenset[Address]:
    """Every address `host` (a name or an IP literal, brackets allowed) connects to; empty when
    it does not resolve here."""
    bare = host.strip()
    if bare.startswith("[") and bare.endswith("]"):
        bare = bare[1:-1]
    if not bare or "\x00" in bare:
        return frozenset()
    try:
        infos = socket.getaddrinfo(bare, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        return frozenset()
    found = (parse(str(info[4][0])) for info in infos)
    return frozenset(a for a in found if a is not None)


def parse(text: str) -> Address | None:
    """An address as a socket reports it (`::ffff:a.b.c.d`, `fe80::1%eth0`), in canonical form:
    an IPv4 address carried in IPv6 becomes that IPv4 address."""
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def is_local(address: Address) -> bool:
    """This machine: loopback, or the unspecified address (which connects to it)."""
    return address.is_loopback or address.is_unspecified


def is_internal(address: Address) -> bool:
    """Not on the public internet: this machine, a private, shared or link-local network, or a
    reserved, multicast or site-local range (an SSRF target)."""
    return (
        is_local(address)
        or not address.is_global
        or address.is_private
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
    )

"""Just enough DER to read the encrypted private keys notary writes.

`cryptography` refuses notary's inner PKCS#8 (its version is 1), so the few structures involved
are walked here: a tag, a length, a value, nested as the key format says. Anything unexpected
is a `ValueError` for the caller to turn into its own message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

SEQUENCE: Final = 0x30
INTEGER: Final = 0x02
OCTET_STRING: Final = 0x04
OBJECT_IDENTIFIER: Final = 0x06


@dataclass(frozen=True)
class Element:
    """One DER element: its tag byte and its content octets."""

    tag: int
    content: bytes

    def children(self) -> list[Element]:
        """The elements a constructed value (a SEQUENCE, a context tag) holds, in order."""
        return elements(self.content)

    def expect(self, tag: int) -> Element:
        if self.tag != tag:
            raise ValueError(f"expected DER tag {tag:#x}, found {self.tag:#x}")
        return self

    def integer(self) -> int:
        return int.from_bytes(self.expect(INTEGER).content, "big", signed=True)

    def octets(self) -> bytes:
        return self.expect(OCTET_STRING).content

    def oid(self) -> str:
        return _oid(self.expect(OBJECT_IDENTIFIER).content)


def parse(data: bytes) -> Element:
    """The single element `data` holds, with nothing after it."""
    found = elements(data)
    if len(found) != 1:
        raise ValueError("expected exactly one DER element")
    return found[0]


def elements(data: bytes) -> list[Element]:
    found: list[Element] = []
    position = 0
    while position < len(data):
        if position + 2 > len(data):
            raise ValueError("truncated DER element")
        tag, first = data[position], data[position + 1]
        position += 2
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            if count == 0 or count > 4 or position + count > len(data):
                raise ValueError("unsupported DER length")
            length = int.from_bytes(data[position : position + count], "big")
            position += count
        if position + length > len(data):
            raise ValueError("truncated DER element")
        found.append(Element(tag, data[position : position + length]))
        position += length
    return found


def _oid(content: bytes) -> str:
    if not content:
        raise ValueError("empty object identifier")
    arcs: list[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in [first, arcs[0] - 40 * first, *arcs[1:]])

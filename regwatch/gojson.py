"""JSON as Go's `encoding/json` writes it, for documents whose bytes must be the Go original's.

Compact, UTF-8, with `<`, `>`, `&`, U+2028 and U+2029 escaped as `json.Marshal` escapes them:
the digest of a manifest rebuilt from a tarball, the `index.json` of a layout and `in`'s
`metadata.json` are the bytes the Go resource would write.
"""

from __future__ import annotations

import json

_GO_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def marshal(value: object) -> bytes:
    """`json.Marshal(value)`: no whitespace, no final newline."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in _GO_ESCAPES:
        if char in text:
            text = text.replace(char, escaped)
    return text.encode()

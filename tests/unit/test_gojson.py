"""`gojson.marshal` writes what Go's `json.Marshal` writes for the same value."""

from __future__ import annotations

import pytest

from regwatch.gojson import marshal


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 1, "a": [True, None, 1.5]}, b'{"b":1,"a":[true,null,1.5]}'),
        (
            {"cmd": ["sh", "-c", "a && b > c < d"]},
            b'{"cmd":["sh","-c","a \\u0026\\u0026 b \\u003e c \\u003c d"]}',
        ),
        ({"label": "caf\u00e9 \u2028 \u2029"}, '{"label":"caf\u00e9 \\u2028 \\u2029"}'.encode()),
        ({"quote": 'say "hi"\n'}, b'{"quote":"say \\"hi\\"\\n"}'),
        ({}, b"{}"),
    ],
    ids=[
        "compact, keys in order",
        "html characters",
        "utf-8 and line separators",
        "escapes",
        "empty",
    ],
)
def test_marshal_writes_what_go_writes(value: object, expected: bytes) -> None:
    assert marshal(value) == expected

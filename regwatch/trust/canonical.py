"""Canonical JSON as Notary signs it: sorted keys, no insignificant whitespace.

Signatures and key IDs cover these bytes, so a document fetched from the server is re-encoded
this way before its signatures are checked, and what we sign is sent exactly as encoded here.
"""

from __future__ import annotations

import json
from typing import Any


def canonical(value: Any) -> bytes:
    """`value` as Notary's canonical encoder writes it (floats never occur in TUF metadata)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

"""A notice as a CloudEvents 1.0 structured JSON event, its HMAC signature, and its one line.

https://github.com/cloudevents/spec (structured content mode, JSON format): the attributes and
`data` in one object, sent as `application/cloudevents+json`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Final

from regwatch.notify.notices import Notice

CONTENT_TYPE: Final = "application/cloudevents+json"
SIGNATURE_HEADER: Final = "X-Regwatch-Signature-256"


def cloudevent(notice: Notice) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": notice.id,
        "source": f"regwatch://{notice.repository}",
        "type": notice.type,
        "subject": notice.subject,
        "time": notice.time_text,
        "datacontenttype": "application/json",
        "data": notice.data,
    }


def body(notice: Notice) -> bytes:
    """The bytes sent (and signed): compact JSON, UTF-8."""
    return json.dumps(cloudevent(notice), separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, sent: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the body>`, GitHub's webhook convention."""
    return "sha256=" + hmac.new(secret.encode(), sent, hashlib.sha256).hexdigest()


def line(notice: Notice) -> str:
    """The notice for people, one line: what a Slack message or an Apprise body says."""
    data = notice.data
    where = f"{notice.repository}:{notice.subject}"
    if notice.kind == "initial":
        return (
            f"regwatch: watch {notice.subject} started on {notice.repository}:"
            f" {data['tags']} tag(s) recorded"
        )
    if notice.kind == "failed":
        return f"regwatch: watch {notice.subject} is failing: {data['error']}"
    if notice.previous_digest:
        flags = [word for word in ("repush", "rollback") if word in notice.words]
        also = f" ({', '.join(flags)})" if flags else ""
        return (
            f"regwatch: {where} moved {_short(notice.previous_digest)} → "
            f"{_short(notice.digest)}{also}"
        )
    return f"regwatch: {where} {notice.type.rpartition('.')[2]} at {_short(notice.digest)}"


def _short(digest: str) -> str:
    algorithm, _, hexes = digest.partition(":")
    return f"{algorithm}:{hexes[:12]}"

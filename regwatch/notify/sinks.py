"""The sinks that speak HTTP: a webhook, a Slack-compatible hook, and Apprise.

A sink's `deliver` returns when the target accepted the notice (a 2xx answer) and raises
`DeliveryFailed` otherwise; it never retries: the follower owns the backoff. Webhook and Slack
go through the `Transport` (our deadlines, CA handling, error translation), with redirects not
followed and no URL in any line; Apprise brings its own HTTP, imported only when configured.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from typing import Any, Final, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

from regwatch.errors import ConfigError, DeliveryFailed, RegwatchError
from regwatch.net import Transport
from regwatch.notify.cloudevents import CONTENT_TYPE, SIGNATURE_HEADER, body, line, signature
from regwatch.notify.command import CommandSink
from regwatch.notify.notices import Notice
from regwatch.notify.settings import Apprise, Command, SinkSettings, Slack, Webhook

ANSWER_LIMIT: Final = 64 * 1024
"""Bytes of a receiver's answer read at most: only its status matters."""


class Sink(Protocol):
    def deliver(self, notice: Notice) -> None: ...


class WebhookSink:
    """Credentials in the URL (`https://user:password@host/…`) become Basic authentication."""

    def __init__(self, name: str, target: Webhook, transport: Transport) -> None:
        self._name = name
        self._target = target
        self._transport = transport
        self._url, self._headers = _with_basic(target.url, target.headers)

    def deliver(self, notice: Notice) -> None:
        sent = body(notice)
        headers = {**self._headers, "Content-Type": CONTENT_TYPE}
        if self._target.secret is not None:
            headers[SIGNATURE_HEADER] = signature(self._target.secret, sent)
        _post(self._transport, self._name, self._url, sent, headers)


class SlackSink:
    def __init__(self, name: str, target: Slack, transport: Transport) -> None:
        self._name = name
        self._target = target
        self._transport = transport

    def deliver(self, notice: Notice) -> None:
        sent = json.dumps({"text": line(notice)}, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        _post(self._transport, self._name, self._target.url, sent, headers)


class AppriseSink:
    """One `apprise.Apprise` holding the sink's URL; its own log stays quiet (URLs are secrets)."""

    def __init__(self, name: str, target: Apprise) -> None:
        import apprise  # noqa: PLC0415  # the optional extra, only for a configured sink

        logging.getLogger("apprise").setLevel(logging.CRITICAL)
        self._name = name
        self._apprise: Any = apprise.Apprise()
        if not self._apprise.add(target.url):
            raise ConfigError(f"notify sink {name}: apprise.url is no URL Apprise understands")

    def deliver(self, notice: Notice) -> None:
        text = json.dumps({"line": line(notice), "event": json.loads(body(notice))})
        if not self._apprise.notify(title=f"regwatch {notice.type}", body=text):
            raise DeliveryFailed(f"sink {self._name}: Apprise could not deliver")


def sink_for(settings: SinkSettings, transport: Transport) -> Sink:
    """The sink a config entry asks for; HTTP sinks share `transport`."""
    target = settings.target
    if isinstance(target, Webhook):
        return WebhookSink(settings.name, target, transport)
    if isinstance(target, Slack):
        return SlackSink(settings.name, target, transport)
    if isinstance(target, Command):
        return CommandSink(settings.name, target)
    return AppriseSink(settings.name, target)


def _with_basic(url: str, headers: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The URL without its user info, and the headers with it as Basic authentication (the
    transport sends only the headers it is given)."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, dict(headers)
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    netloc = parts.netloc.rpartition("@")[2]
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    basic = "Basic " + base64.b64encode(pair.encode()).decode()
    given = {name.lower() for name in headers}
    return bare, {**headers, **({} if "authorization" in given else {"Authorization": basic})}


def _post(transport: Transport, name: str, url: str, sent: bytes, headers: dict[str, str]) -> None:
    what = f"deliver to sink {name}"
    try:
        answer = transport.fetch(
            "POST",
            url,
            what=what,
            limit=ANSWER_LIMIT,
            headers=headers,
            data=sent,
            retry=False,
            follow_redirects=False,
        )
    except DeliveryFailed:
        raise
    except RegwatchError as exc:
        raise DeliveryFailed(str(exc)) from exc
    if not 200 <= answer.status < 300:
        raise DeliveryFailed(f"{what}: answered {answer.status} {answer.reason}".rstrip())

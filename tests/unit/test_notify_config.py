"""`notify:` in the daemon's config: what each sink means, and the one line each mistake gets."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from regwatch.errors import ConfigError
from regwatch.frontends.watchconfig import load_config
from regwatch.notify.settings import Apprise, Command, Slack, Webhook

WATCHES = (
    "watches:\n"
    "  - {name: app, source: {repository: 'registry.test/team/app'}, every: 1m}\n"
    "  - {source: {repository: alpine}, every: 1m}\n"
)
SECRET = "s3cr3t-value"


def load(tmp_path: Path, notify: str, environ: dict[str, str] | None = None) -> Path:
    path = tmp_path / "regwatch.yaml"
    path.write_text(WATCHES + "notify:\n" + notify)
    return path


def refusal(tmp_path: Path, notify: str, environ: dict[str, str] | None = None) -> str:
    path = load(tmp_path, notify)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {})
    message = str(caught.value)
    assert "\n" not in message
    return message.removeprefix(f"config {path}: ")


def test_every_sink_type_with_its_filters_and_default_names(tmp_path: Path) -> None:
    path = load(
        tmp_path,
        "  - name: hooks\n"
        "    watches: [app]\n"
        "    kinds: [moved, repush]\n"
        "    announce_initial: false\n"
        "    webhook: {url: 'https://hooks.test/x', secret: '${SECRET}', headers: {X-A: b}}\n"
        "  - slack: {url: 'https://hooks.slack.test/services/T/B/C'}\n"
        "  - command: {argv: [/bin/true, --flag]}\n"
        "  - apprise: {url: 'json://127.0.0.1:9/'}\n",
    )

    config = load_config(path, {"SECRET": SECRET})

    hooks, slack, command, apprise = config.notify
    assert hooks.name == "hooks"
    assert hooks.checkpoint == "sink:hooks"
    assert hooks.target == Webhook("https://hooks.test/x", SECRET, {"X-A": "b"})
    assert hooks.repositories == {"registry.test/team/app"}
    assert hooks.watches == {"app"}
    assert hooks.kinds == frozenset({"moved", "repush"})
    assert not hooks.announce_initial
    assert SECRET not in repr(hooks)
    assert (slack.name, slack.target) == (
        "slack-1",
        Slack("https://hooks.slack.test/services/T/B/C"),
    )
    assert "services" not in repr(slack)
    assert slack.repositories == {"registry.test/team/app", "index.docker.io/library/alpine"}
    assert slack.watches == {"app", "alpine"}
    assert slack.kinds is None
    assert slack.announce_initial
    assert (command.name, command.target) == ("command-2", Command(("/bin/true", "--flag")))
    assert (apprise.name, apprise.target) == ("apprise-3", Apprise("json://127.0.0.1:9/"))


@pytest.mark.parametrize(
    ("notify", "line"),
    [
        (
            "  - {kinds: [moved]}\n",
            "notify[0]: give exactly one of webhook, slack, command, apprise",
        ),
        (
            "  - {webhook: {url: 'https://a.test/'}, slack: {url: 'https://b.test/'}}\n",
            "notify[0]: give exactly one of webhook, slack, command, apprise"
            " (given: webhook, slack)",
        ),
        (
            "  - {kinds: [moved, pushed], slack: {url: 'https://b.test/'}}\n",
            "notify[0].kinds: unknown kind 'pushed': use appeared, moved, disappeared, repush,"
            " rollback, failed, initial",
        ),
        (
            "  - {watches: [app, nope], slack: {url: 'https://b.test/'}}\n",
            "notify[0].watches[1]: no watch is named 'nope'"
            " (a watch without `name` is its repository)",
        ),
        (
            "  - {slack: {url: 'https://b.test/'}}\n  - {name: slack-0, slack: {url: 'https://b.test/'}}\n",
            "notify[1].name: the name 'slack-0' is already the name of notify[0]: sink names are"
            " unique (a sink without `name` is named <type>-<index>)",
        ),
        ("  - {webhook: {}}\n", "notify[0].webhook.url: required"),
        (
            "  - {webhook: {url: 'ftp://x.test/'}}\n",
            "notify[0].webhook.url: must be an http:// or https:// URL with a host",
        ),
        (
            "  - {webhook: {url: 'https://x.test/', timeout: 3}}\n",
            "notify[0].webhook.timeout: unknown field",
        ),
        (
            "  - {webhook: {url: 'https://x.test/', headers: {X-A: 1}}}\n",
            "notify[0].webhook.headers.X-A: must be a string",
        ),
        (
            "  - {command: {argv: []}}\n",
            "notify[0].command.argv: must name a program: argv: [/path/to/program, arguments...]",
        ),
        (
            "  - {slack: {url: 'https://x.test/'}, announce_initial: 'no'}\n",
            "notify[0].announce_initial: must be true or false",
        ),
        ("  - {slack: {url: 'https://x.test/'}, colour: red}\n", "notify[0].colour: unknown field"),
        ("  - slack\n", "notify[0]: must be a mapping"),
    ],
)
def test_each_mistake_is_one_line_naming_the_key(tmp_path: Path, notify: str, line: str) -> None:
    assert refusal(tmp_path, notify) == line


def test_a_url_from_a_variable_is_never_shown(tmp_path: Path) -> None:
    line = refusal(tmp_path, "  - {webhook: {url: '${HOOK}'}}\n", {"HOOK": f"ftp://{SECRET}/"})

    assert line == "notify[0].webhook.url: must be an http:// or https:// URL with a host"
    assert SECRET not in line


def test_apprise_without_its_extra_names_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "apprise" else real(name, *a)
    )

    line = refusal(tmp_path, "  - {apprise: {url: 'json://127.0.0.1:9/'}}\n")

    assert line == "notify[0].apprise: Apprise is not installed: pip install 'regwatch[apprise]'"

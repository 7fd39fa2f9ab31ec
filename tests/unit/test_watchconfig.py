"""The daemon's config file: what it means, and the one line each mistake in it gets."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from regwatch.errors import ConfigError
from regwatch.frontends.watchconfig import (
    DEFAULT_RESCAN,
    DaemonConfig,
    Jitter,
    default_store,
    load_config,
)
from regwatch.notify.settings import Slack, Webhook
from regwatch.refs import Repository

ROOT = Path(__file__).resolve().parents[2]
WATCH = "watches:\n  - source: {repository: alpine}\n    every: 1m\n"
ENVIRON = {"HOME": "/home/ann"}
DURATION_HELP = (
    "is not a duration: write a number and a unit (s, m, h or d), such as 30s, 5m, 24h or 1h30m"
)


def loaded(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> DaemonConfig:
    path = tmp_path / "regwatch.yaml"
    path.write_text(text)
    return load_config(path, {**ENVIRON, **(environ or {})})


def refusal(tmp_path: Path, text: str | bytes, environ: dict[str, str] | None = None) -> str:
    """The error line, after the `config FILE: ` every line starts with."""
    path = tmp_path / "regwatch.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {**ENVIRON, **(environ or {})})
    message = str(caught.value)
    assert "\n" not in message
    prefix = f"config {path}: "
    assert message.startswith(prefix)
    return message.removeprefix(prefix)


# --- what a config means ----------------------------------------------------------------------


def test_the_example_config_is_valid() -> None:
    """`config.example.yaml` documents every key; it must also load as written."""
    config = load_config(
        ROOT / "config.example.yaml",
        {
            "ACME_REGISTRY_PASSWORD": "acme-secret",
            "MIRROR_PASSWORD": "mirror-secret",
            "REGWATCH_HOOK_SECRET": "hook-secret",
            "SLACK_WEBHOOK_URL": "https://hooks.slack.test/services/T/B/C",
            "TELEGRAM_BOT_TOKEN": "bot",
            "TELEGRAM_CHAT_ID": "chat",
        },
    )
    assert [w.name for w in config.watches] == [
        "alpine",
        "nginx-stable",
        "postgres-16",
        "acme-app",
        "redis",
    ]
    assert config.store == "sqlite:///var/lib/regwatch/regwatch.db"
    assert config.retention_runs == timedelta(days=30)
    assert [s.name for s in config.notify] == ["deploys", "slack-1", "on-change", "apprise-3"]
    assert config.notify[0].watches == {"acme-app", "nginx-stable"}
    acme = config.watches[3].spec
    assert acme.access.password == "acme-secret"
    assert config.watches[4].spec.mirror is not None
    assert config.watches[2].cron == "*/15 * * * *"
    assert config.watches[2].spec.rescan == timedelta(hours=6)


def test_a_watch_becomes_a_spec_with_its_schedule(tmp_path: Path) -> None:
    config = loaded(
        tmp_path,
        "watches:\n"
        "  - name: edge\n"
        "    source: {repository: 'ghcr.io/acme/app', tag_regex: '^1\\.', concurrency: 3}\n"
        "    every: 1h30m\n"
        "    jitter: 30s\n"
        "    rescan: 6h\n",
    )
    (watch,) = config.watches
    assert watch.name == "edge"
    assert watch.spec.repository == Repository("ghcr.io", "acme/app")
    assert watch.spec.name == "ghcr.io/acme/app"
    assert watch.spec.selection.tag_regex == "^1\\."
    assert watch.spec.concurrency == 3
    assert watch.spec.rescan == timedelta(hours=6)
    assert watch.every == timedelta(minutes=90)
    assert watch.cron is None
    assert watch.jitter == Jitter(duration=timedelta(seconds=30))


def test_what_is_left_out_takes_its_default(tmp_path: Path) -> None:
    config = loaded(tmp_path, WATCH, {"XDG_STATE_HOME": "/state"})
    (watch,) = config.watches
    assert watch.name == "alpine"
    assert watch.spec.rescan == DEFAULT_RESCAN == timedelta(hours=24)
    assert watch.jitter == Jitter()
    assert config.store == "sqlite:////state/regwatch/regwatch.db"
    assert config.workers == 4
    assert config.retention_runs is None
    assert config.notify == ()


def test_the_name_defaults_to_the_repository_as_written(tmp_path: Path) -> None:
    config = loaded(
        tmp_path, "watches: [{source: {repository: 'docker.io/library/redis'}, every: 1m}]"
    )
    assert config.watches[0].name == "docker.io/library/redis"


def test_a_cron_schedule(tmp_path: Path) -> None:
    config = loaded(tmp_path, "watches: [{source: {repository: a}, cron: '*/10 * * * *'}]")
    assert config.watches[0].cron == "*/10 * * * *"
    assert config.watches[0].every is None


@pytest.mark.parametrize(
    ("written", "jitter", "seconds"),
    [
        ("10%", Jitter(fraction=0.1), 60.0),
        ("0%", Jitter(fraction=0.0), 0.0),
        ("100%", Jitter(fraction=1.0), 600.0),
        ("2.5%", Jitter(fraction=0.025), 15.0),
        ("30s", Jitter(duration=timedelta(seconds=30)), 30.0),
        ("1m30s", Jitter(duration=timedelta(seconds=90)), 90.0),
    ],
)
def test_jitter_is_a_share_of_the_interval_or_a_duration(
    tmp_path: Path, written: str, jitter: Jitter, seconds: float
) -> None:
    config = loaded(
        tmp_path, f"watches: [{{source: {{repository: a}}, every: 10m, jitter: '{written}'}}]"
    )
    assert config.watches[0].jitter == jitter
    assert config.watches[0].jitter.seconds(timedelta(minutes=10)) == pytest.approx(seconds)


def test_top_level_keys(tmp_path: Path) -> None:
    config = loaded(
        tmp_path,
        "store: 'postgresql+psycopg://rw@db/regwatch'\n"
        "workers: 16\n"
        "retention: {runs: 30d}\n"
        "notify: [{webhook: {url: 'https://hooks.test/x'}}]\n" + WATCH,
    )
    assert config.store == "postgresql+psycopg://rw@db/regwatch"
    assert config.workers == 16
    assert config.retention_runs == timedelta(days=30)
    assert [(sink.name, sink.target) for sink in config.notify] == [
        ("webhook-0", Webhook("https://hooks.test/x"))
    ]
    assert config.path == tmp_path / "regwatch.yaml"


def test_empty_sections_are_their_defaults(tmp_path: Path) -> None:
    config = loaded(tmp_path, "defaults:\nretention: {}\nnotify:\n" + WATCH)
    assert config.retention_runs is None
    assert config.notify == ()


def test_a_number_keeps_the_text_it_was_written_as(tmp_path: Path) -> None:
    """`tag: 3.10` is the tag `3.10`, as a Concourse payload's raw number is, not `3.1`."""
    config = loaded(tmp_path, "watches: [{source: {repository: a, tag: 3.10}, every: 1m}]")
    assert config.watches[0].spec.selection.tag == "3.10"


def test_source_keys_match_in_any_case_and_empty_means_unset(tmp_path: Path) -> None:
    config = loaded(
        tmp_path,
        "watches: [{source: {Repository: a, TAG_REGEX: '^1', variant: ''}, every: 1m}]",
    )
    assert config.watches[0].spec.selection.tag_regex == "^1"
    assert config.watches[0].spec.selection.variant is None


# --- defaults ---------------------------------------------------------------------------------


def test_defaults_fill_in_what_a_watch_leaves_out(tmp_path: Path) -> None:
    config = loaded(
        tmp_path,
        "defaults:\n"
        "  every: 5m\n"
        "  jitter: 10%\n"
        "  rescan: 1h\n"
        "  source: {username: bob, password: pw, tag_regex: '^3'}\n"
        "watches:\n"
        "  - source: {repository: a}\n"
        "  - source: {repository: b, Username: carol, tag_regex: ''}\n"
        "    every: 1m\n"
        "    jitter: 5s\n"
        "    rescan: 2h\n",
    )
    first, second = config.watches
    assert (first.every, first.jitter, first.spec.rescan) == (
        timedelta(minutes=5),
        Jitter(fraction=0.1),
        timedelta(hours=1),
    )
    assert first.spec.access.username == "bob"
    assert first.spec.selection.tag_regex == "^3"
    assert (second.every, second.jitter, second.spec.rescan) == (
        timedelta(minutes=1),
        Jitter(duration=timedelta(seconds=5)),
        timedelta(hours=2),
    )
    assert second.spec.access.username == "carol", "a watch's own field wins, in any case"
    assert second.spec.access.password == "pw", "the rest of defaults.source still applies"
    assert second.spec.selection.tag_regex is None, "an empty value clears a default"


def test_a_watchs_schedule_replaces_the_defaults_whole(tmp_path: Path) -> None:
    config = loaded(
        tmp_path,
        "defaults: {every: 5m}\n"
        "watches:\n"
        "  - {source: {repository: a}, cron: '0 * * * *'}\n"
        "  - {source: {repository: b}}\n",
    )
    assert (config.watches[0].every, config.watches[0].cron) == (None, "0 * * * *")
    assert (config.watches[1].every, config.watches[1].cron) == (timedelta(minutes=5), None)


def test_defaults_cron_under_a_watch_with_every(tmp_path: Path) -> None:
    config = loaded(
        tmp_path,
        "defaults: {cron: '0 * * * *'}\nwatches: [{source: {repository: a}, every: 1m}]",
    )
    assert (config.watches[0].every, config.watches[0].cron) == (timedelta(minutes=1), None)


# --- ${VAR} -----------------------------------------------------------------------------------


def test_variables_are_replaced_from_the_environment(tmp_path: Path) -> None:
    config = loaded(
        tmp_path,
        "store: 'postgresql+psycopg://rw:${DB_PASSWORD}@db/regwatch'\n"
        "watches:\n"
        "  - name: '${TEAM}-app'\n"
        "    source: {repository: '${REGISTRY}/team/app', password: '${PW}', username: u}\n"
        "    every: '${EVERY}'\n"
        "notify: [{slack: {url: 'https://hooks.test/${HOOK}'}}]\n",
        {
            "DB_PASSWORD": "db-secret",
            "TEAM": "core",
            "REGISTRY": "registry.test:5000",
            "PW": "p$w{}",
            "EVERY": "2m",
            "HOOK": "T0/B1",
        },
    )
    (watch,) = config.watches
    assert config.store == "postgresql+psycopg://rw:db-secret@db/regwatch"
    assert watch.name == "core-app"
    assert watch.spec.repository == Repository("registry.test:5000", "team/app")
    assert watch.spec.access.password == "p$w{}", "a value is not expanded again"
    assert watch.every == timedelta(minutes=2)
    assert config.notify[0].target == Slack("https://hooks.test/T0/B1")


def test_a_doubled_dollar_is_a_literal(tmp_path: Path) -> None:
    config = loaded(
        tmp_path,
        "watches: [{source: {repository: a, username: u, password: 'a$${PW}b$c$$d'}, every: 1m}]",
        {"PW": "not used"},
    )
    assert config.watches[0].spec.access.password == "a${PW}b$c$$d"


def test_an_empty_variable_is_an_empty_value(tmp_path: Path) -> None:
    config = loaded(
        tmp_path,
        "watches: [{source: {repository: a, tag_regex: '${NONE}'}, every: 1m}]",
        {"NONE": ""},
    )
    assert config.watches[0].spec.selection.tag_regex is None


def test_keys_are_not_expanded(tmp_path: Path) -> None:
    assert refusal(tmp_path, "${X}: 1\n" + WATCH, {"X": "workers"}) == "${X}: unknown field"


# --- the one line of each mistake -------------------------------------------------------------

SECRETS = {
    "EVERY": "sekrit10x",
    "REPO": "Sekrit/App",
    "TAG": "-hunter2",
    "CRON": "*/hunter * * * *",
    "NAME": "hunter2-name",
    "JITTER": "hunter2%",
}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        # keys
        (
            "watches:\n"
            "  - {source: {repository: a}, every: 1m}\n"
            "  - {source: {repository: b}, every: 1m}\n"
            "  - {source: {repository: c, nonsense_key: 1}, every: 1m}\n",
            "watches[2].source.nonsense_key: unknown field",
        ),
        ("watchs: []\n" + WATCH, "watchs: unknown field"),
        ("1: x\n" + WATCH, "1: unknown field"),
        (
            "watches: [{source: {repository: a, 1: x}, every: 1m}]",
            "watches[0].source.1: unknown field",
        ),
        ("watches: [{source: {repository: a}, evry: 1m}]", "watches[0].evry: unknown field"),
        ("defaults: {source: {nope: 1}}\n" + WATCH, "defaults.source.nope: unknown field"),
        ("retention: {rons: 30d}\n" + WATCH, "retention.rons: unknown field"),
        (
            "defaults: {name: x}\n" + WATCH,
            "defaults.name: a name belongs to one watch: defaults cannot give one",
        ),
        (
            "watches: [{source: {repository: a, Store: 'sqlite://'}, every: 1m}]",
            "watches[0].source.Store: the store is top-level: "
            "write `store:` at the top of the config",
        ),
        (
            "watches: [{source: {repository: a, Max_Age: 2m}, every: 1m}]",
            "watches[0].source.Max_Age: max_age is for Concourse checks: "
            "a watch polls on its schedule",
        ),
        (
            "watches: [{source: {repository: a, max_age: 2x}, every: 1m}]",
            "watches[0].source.max_age: '2x' is not a duration: write a number and a unit "
            "(s, m, h or d), such as 30s, 5m, 24h or 1h30m",
        ),
        (
            "defaults: {source: {store: 'sqlite://'}}\n" + WATCH,
            "defaults.source.store: the store is top-level: "
            "write `store:` at the top of the config",
        ),
        # shapes
        ("store: x\n", "watches: required"),
        ("watches:\n", "watches: must be a list"),
        ("watches: []\n", "watches: empty: list at least one repository to watch"),
        ("watches: [alpine]\n", "watches[0]: must be a mapping"),
        ("watches: [{every: 1m}]\n", "watches[0].source: required"),
        ("watches: [{source: alpine, every: 1m}]\n", "watches[0].source: must be a mapping"),
        (
            "watches: [{source: {tag: x}, every: 1m}]\n",
            "watches[0].source.repository: required: "
            "the image repository to watch, e.g. ghcr.io/acme/app",
        ),
        ("defaults: [every]\n" + WATCH, "defaults: must be a mapping"),
        ("notify: {a: 1}\n" + WATCH, "notify: must be a list"),
        ("notify: [1]\n" + WATCH, "notify[0]: must be a mapping"),
        ("retention: 30d\n" + WATCH, "retention: must be a mapping"),
        # values
        (
            "watches: [{source: {repository: a, Insecure: 'yes'}, every: 1m}]",
            "watches[0].source.Insecure: must be true or false",
        ),
        (
            "watches: [{source: {repository: a, pre_release_prefixes: [rc, 1]}, every: 1m}]",
            "watches[0].source.pre_release_prefixes[1]: must be a string",
        ),
        (
            "watches: [{source: {repository: a, concurrency: 0}, every: 1m}]",
            "watches[0].source.concurrency: must be at least 1",
        ),
        ("workers: 0\n" + WATCH, "workers: must be at least 1"),
        ("workers: 65\n" + WATCH, "workers: must be at most 64"),
        ("workers: true\n" + WATCH, "workers: must be a whole number"),
        ("workers: '4'\n" + WATCH, "workers: must be a whole number"),
        ("workers: 2.5\n" + WATCH, "workers: must be a whole number"),
        ("store: 5\n" + WATCH, "store: must be a string"),
        (
            "store: ''\n" + WATCH,
            "store: empty: write an SQLAlchemy URL, or leave it out for the default",
        ),
        (
            "watches: [{name: '', source: {repository: a}, every: 1m}]",
            "watches[0].name: must not be empty (leave it out to use the repository)",
        ),
        (
            "watches: [{source: {repository: 'Acme/App'}, every: 1m}]",
            "watches[0].source.repository: invalid repository 'Acme/App': "
            "repository names must be lowercase",
        ),
        (
            "watches: [{source: {repository: a, tag: '.x'}, every: 1m}]",
            "watches[0].source.tag: invalid tag '.x': a tag is 1 to 128 letters, digits, "
            "'_', '.' and '-', not starting with '.' or '-'",
        ),
        (
            "watches: [{source: {repository: a, aws_region: eu-west-1, aws_role_arn: r,"
            " aws_role_arns: [r]}, every: 1m}]",
            "watches[0].source: cannot authenticate with ECR: "
            "`aws_role_arn` cannot be set at the same time as `aws_role_arns`",
        ),
        # durations
        (
            "watches: [{source: {repository: a}, every: 10x}]",
            f"watches[0].every: '10x' {DURATION_HELP}",
        ),
        (
            "watches: [{source: {repository: a}, every: 300}]",
            f"watches[0].every: '300' {DURATION_HELP}",
        ),
        (
            "watches: [{source: {repository: a}, every: 1m, rescan: 5 parsecs}]",
            f"watches[0].rescan: '5 parsecs' {DURATION_HELP}",
        ),
        (
            "watches: [{source: {repository: a}, every: 0s}]",
            "watches[0].every: '0s' is not a duration longer than zero",
        ),
        ("defaults: {every: 1y}\n" + WATCH, f"defaults.every: '1y' {DURATION_HELP}"),
        ("retention: {runs: 30}\n" + WATCH, f"retention.runs: '30' {DURATION_HELP}"),
        (
            "watches: [{source: {repository: a}, every: 1m, jitter: 150%}]",
            "watches[0].jitter: '150%' is more than the whole interval (100%)",
        ),
        (
            "watches: [{source: {repository: a}, every: 1m, jitter: 10}]",
            "watches[0].jitter: '10' is not a jitter: write a share of the interval such as "
            "10%, or a duration such as 30s",
        ),
        # schedules
        (
            "watches: [{source: {repository: a}, every: 1m, cron: '* * * * *'}]",
            "watches[0]: both every and cron are given: keep one",
        ),
        (
            "defaults: {every: 1m, cron: '* * * * *'}\n" + WATCH,
            "defaults: both every and cron are given: keep one",
        ),
        (
            "watches: [{source: {repository: a}}]",
            "watches[0]: no schedule: give every or cron, here or in defaults",
        ),
        (
            "watches: [{source: {repository: a}, cron: '*/x * * * *'}]",
            "watches[0].cron: '*/x * * * *' is not a crontab line (minute hour day month "
            'weekday): unrecognized expression "*/x" for field "minute"',
        ),
        (
            "watches: [{source: {repository: a}, cron: '@hourly'}]",
            "watches[0].cron: '@hourly' is not a crontab line (minute hour day month "
            "weekday): wrong number of fields; got 1, expected 5",
        ),
        # names
        (
            "watches:\n"
            "  - {source: {repository: a}, every: 1m}\n"
            "  - {source: {repository: b}, every: 1m}\n"
            "  - {source: {repository: a, tag: x}, every: 1m}\n",
            "watches[2]: the name 'a' is already the name of watches[0]: names are unique "
            "(a watch without `name` is named after its repository)",
        ),
        (
            "watches:\n"
            "  - {name: x, source: {repository: a}, every: 1m}\n"
            "  - {name: x, source: {repository: b}, every: 1m}\n",
            "watches[1].name: the name 'x' is already the name of watches[0]: names are unique "
            "(a watch without `name` is named after its repository)",
        ),
        # variables
        (
            "watches: [{source: {repository: a, password: '${PW}'}, every: 1m}]",
            "watches[0].source.password: ${PW} is not set in the environment",
        ),
        (
            "watches: [{source: {repository: a, password: 'a${'}, every: 1m}]",
            "watches[0].source.password: '${' starts no variable: write ${NAME} "
            "(letters, digits and _), or $${ for a literal ${",
        ),
        (
            "watches: [{source: {repository: a, password: '${not-a-name}'}, every: 1m}]",
            "watches[0].source.password: '${' starts no variable: write ${NAME} "
            "(letters, digits and _), or $${ for a literal ${",
        ),
        (
            "notify: [{slack: {url: 'https://hooks.test/${HOOK}'}}]\n" + WATCH,
            "notify[0].slack.url: ${HOOK} is not set in the environment",
        ),
    ],
)
def test_each_mistake_is_one_line_naming_the_key(tmp_path: Path, text: str, line: str) -> None:
    assert refusal(tmp_path, text) == line


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            "watches: [{source: {repository: a}, every: '${EVERY}'}]",
            f"watches[0].every: '${{EVERY}}' {DURATION_HELP}",
        ),
        (
            "defaults: {every: '${EVERY}'}\n" + "watches: [{source: {repository: a}}]",
            f"defaults.every: '${{EVERY}}' {DURATION_HELP}",
        ),
        (
            "watches: [{source: {repository: '${REPO}'}, every: 1m}]",
            "watches[0].source.repository: invalid repository '${REPO}': "
            "repository names must be lowercase",
        ),
        (
            "watches: [{source: {repository: a, tag: '${TAG}'}, every: 1m}]",
            "watches[0].source.tag: invalid tag '${TAG}': a tag is 1 to 128 letters, digits, "
            "'_', '.' and '-', not starting with '.' or '-'",
        ),
        (
            "watches: [{source: {repository: a}, cron: '${CRON}'}]",
            "watches[0].cron: '${CRON}' is not a crontab line (minute hour day month "
            'weekday): unrecognized expression "…" for field "minute"',
        ),
        (
            "watches: [{source: {repository: a}, every: 1m, jitter: '${JITTER}'}]",
            "watches[0].jitter: '${JITTER}' is not a jitter: write a share of the interval "
            "such as 10%, or a duration such as 30s",
        ),
        (
            "watches:\n"
            "  - {name: '${NAME}', source: {repository: a}, every: 1m}\n"
            "  - {name: '${NAME}', source: {repository: b}, every: 1m}\n",
            "watches[1].name: the name '${NAME}' is already the name of watches[0]: "
            "names are unique (a watch without `name` is named after its repository)",
        ),
    ],
)
def test_a_value_from_a_variable_is_shown_as_the_variable(
    tmp_path: Path, text: str, line: str
) -> None:
    shown = refusal(tmp_path, text, SECRETS)
    assert shown == line
    assert "hunter" not in shown
    assert "ekrit" not in shown


def test_a_type_error_about_a_variable_shows_no_value(tmp_path: Path) -> None:
    line = refusal(
        tmp_path,
        "watches: [{source: {repository: a, insecure: '${INSECURE}'}, every: 1m}]",
        {"INSECURE": "true"},
    )
    assert line == "watches[0].source.insecure: must be true or false"


# --- the file itself --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("", "empty: the top level needs `watches:`"),
        ("- alpine\n", "not a mapping of keys to values (the top level needs `watches:`)"),
        ("just words\n", "not a mapping of keys to values (the top level needs `watches:`)"),
        (
            "watches:\n  - source: {repository: a\n",
            "not valid YAML: expected ',' or '}', but got '<stream end>' at line 3 column 1",
        ),
        (
            "watches: []\nwatches: []\n",
            "not valid YAML: key 'watches' given twice at line 2 column 1",
        ),
        (
            "watches: [{source: {repository: a}, every: 1m, every: 2m}]",
            "not valid YAML: key 'every' given twice at line 1 column 48",
        ),
        (
            "a: !!python/object:os.system x\n",
            "not valid YAML: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object:os.system' at line 1 column 4",
        ),
        ("a: '\x01'\n", "not valid YAML: character #x0001 is not allowed in YAML at offset 4"),
        (b"a: '\xff'\n", "not valid YAML: not UTF-8 text at offset 4"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "not valid YAML: nested too deeply"),
        ("a: &a [*a]\n", "a: nested deeper than 64 levels"),
    ],
)
def test_a_file_that_is_no_config(tmp_path: Path, text: str | bytes, line: str) -> None:
    assert refusal(tmp_path, text) == line


def test_yaml_aliases_cannot_expand_without_bound(tmp_path: Path) -> None:
    """Ten aliases of ten aliases, six deep: a million values from a few hundred bytes."""
    text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    for level in range(1, 6):
        text += f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 10)}]\n"
    assert refusal(tmp_path, text) == "more than 100000 values once YAML aliases are expanded"


def test_aliases_within_bounds_are_yaml(tmp_path: Path) -> None:
    config = loaded(
        tmp_path,
        "watches:\n"
        "  - {name: one, source: &shared {repository: a, tag_regex: '^1'}, every: 1m}\n"
        "  - {name: two, source: *shared, every: 2m}\n",
    )
    assert [w.spec.selection.tag_regex for w in config.watches] == ["^1", "^1"]


def test_a_file_over_one_mebibyte_is_refused(tmp_path: Path) -> None:
    padding = "# " + "x" * 1023 + "\n"
    assert refusal(tmp_path, WATCH + padding * 1024) == "larger than 1 MiB: refused unread"


def test_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path, ENVIRON)
    assert str(caught.value) == (
        f"config {path}: no such file: config.example.yaml shows what one holds"
    )


def test_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, ENVIRON)
    assert str(caught.value) == f"config {tmp_path}: cannot read: is a directory"


def test_loading_writes_nothing(tmp_path: Path) -> None:
    """Not the default store's directory, not a file beside the config: nothing at all."""
    state = tmp_path / "state"
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "regwatch.yaml").write_text(WATCH)
    before = sorted(os.listdir(tmp_path)), sorted(os.listdir(config_dir))
    config = load_config(config_dir / "regwatch.yaml", {"XDG_STATE_HOME": str(state)})
    assert config.store == f"sqlite:///{state}/regwatch/regwatch.db"
    assert (sorted(os.listdir(tmp_path)), sorted(os.listdir(config_dir))) == before


# --- the default store ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "store"),
    [
        (
            {"XDG_STATE_HOME": "/state", "HOME": "/home/ann"},
            "sqlite:////state/regwatch/regwatch.db",
        ),
        ({"HOME": "/home/ann"}, "sqlite:////home/ann/.local/state/regwatch/regwatch.db"),
        (
            {"XDG_STATE_HOME": "", "HOME": "/home/ann"},
            "sqlite:////home/ann/.local/state/regwatch/regwatch.db",
        ),
        (
            {"XDG_STATE_HOME": "relative/state", "HOME": "/home/ann"},
            "sqlite:////home/ann/.local/state/regwatch/regwatch.db",
        ),
    ],
)
def test_the_default_store_is_under_the_state_directory(
    environ: dict[str, str], store: str
) -> None:
    assert default_store(environ) == store


def test_the_readme_example_is_valid(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## The daemon's config file", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = loaded(tmp_path, example, {"ACME_TOKEN": "t", "HOOK_SECRET": "s"})
    assert [w.name for w in config.watches] == ["alpine", "ghcr.io/acme/app"]
    assert config.watches[1].every == timedelta(minutes=5)

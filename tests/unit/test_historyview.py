"""`regwatch history`'s moments and formats: pure functions, no store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from regwatch.errors import ConfigError
from regwatch.frontends.historyview import TAGS_AT, parse_moment, render, render_one

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2d", NOW - timedelta(days=2)),
        ("1h30m", NOW - timedelta(minutes=90)),
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T12:00:00Z", datetime(2026, 3, 1, 12, tzinfo=UTC)),
        ("2026-03-01T14:00:00+02:00", datetime(2026, 3, 1, 12, tzinfo=UTC)),
        ("2026-03-01 12:00", datetime(2026, 3, 1, 12, tzinfo=UTC)),
    ],
)
def test_a_moment_is_iso_8601_or_how_long_ago(text: str, moment: datetime) -> None:
    found = parse_moment("--at", text, NOW)

    assert found == moment
    assert found.tzinfo is not None
    assert found.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["yesterday", "2 days", "10x", "", "2026-13-01", "3\u2028"])
def test_anything_else_is_one_line_naming_the_option(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_moment("--since", text, NOW)

    message = str(caught.value)
    assert message.startswith("--since: ")
    assert "is not a time" in message
    assert "\u2028" not in message


ROWS: list[dict[str, Any]] = [
    {"tag": "latest", "digest": "sha256:a", "since": "2026-03-01T00:00:00Z", "until": None},
    {"tag": "1.0", "digest": "sha256:b", "since": "2026-03-02T00:00:00Z", "until": "x"},
]


def test_csv_writes_null_empty_lists_joined_and_booleans_as_json_does() -> None:
    rows = [{"tag": "t", "list": ["linux/amd64", "linux/arm64"], "empty": [], "n": None}]

    assert render(rows, ("tag", "list", "empty", "n"), "csv") == (
        "tag,list,empty,n\nt,linux/amd64 linux/arm64,,\n"
    )
    assert render([{"b": True}], ("b",), "csv") == "b\ntrue\n"


def test_json_and_table_and_an_empty_answer() -> None:
    assert json.loads(render(ROWS, TAGS_AT, "json")) == ROWS
    assert render([], TAGS_AT, "json") == "[]\n"
    assert render([], TAGS_AT, "csv") == "tag,digest,since,until\n"
    table = render(ROWS, TAGS_AT, "table").splitlines()
    assert table[0].split() == ["TAG", "DIGEST", "SINCE", "UNTIL"]
    assert table[1].split() == ["latest", "sha256:a", "2026-03-01T00:00:00Z", "-"]


def test_one_answer_is_an_object_in_json() -> None:
    row = {"digest": "sha256:a", "since": "s", "until": None}

    assert json.loads(render_one(row, ("digest", "since", "until"), "json")) == row
    assert (
        render_one(row, ("digest", "since", "until"), "csv") == "digest,since,until\nsha256:a,s,\n"
    )


def test_a_table_cell_is_one_line() -> None:
    table = render([{"tag": "a\nb"}], ("tag",), "table")

    assert table.splitlines() == ["TAG", "a\\nb"]

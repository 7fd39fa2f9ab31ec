"""`regwatch history`: the moments it is asked about, and its answers as a table, JSON or CSV.

JSON and CSV carry the same names in the same order; CSV writes a list as its items joined by
spaces and null as an empty cell, booleans as `true`/`false`. The table is for people: one row
a line, cells escaped to one line, `-` for null.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from regwatch.durations import parse_duration
from regwatch.errors import ConfigError
from regwatch.frontends.output import escaped

INTERVAL = ("digest", "since", "until")
"""`--at T --tag TAG`: one object."""
TAGS_AT = ("tag", *INTERVAL)
"""`--at T`: one object per tag present at T."""


def parse_moment(option: str, text: str, now: datetime) -> datetime:
    """ISO 8601 (a time without an offset is UTC), or a duration meaning that long before now."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"{option}: {escaped(repr(text))} is not a time: write ISO 8601"
            " (2026-03-01 or 2026-03-01T12:00:00Z) or how long ago (2d, 3h, 30m)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.utcoffset() is None else moment.astimezone(UTC)


def render(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], form: str) -> str:
    """A list of rows in the format asked for (`table`, `json` or `csv`)."""
    if form == "json":
        return json.dumps([dict(row) for row in rows], indent=2) + "\n"
    if form == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_csv_cell(row[column]) for column in columns] for row in rows)
        return buffer.getvalue()
    return _table(rows, columns)


def render_one(row: Mapping[str, Any], columns: Sequence[str], form: str) -> str:
    """One answer: a JSON object, else a header and one row."""
    if form == "json":
        return json.dumps(dict(row), indent=2) + "\n"
    return render([row], columns, form)


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    cells = [[column.upper().replace("_", " ") for column in columns]]
    cells += [[_table_cell(row[column]) for column in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        + "\n"
        for line in cells
    )


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return " ".join(str(item) for item in value)
    return str(value)


def _table_cell(value: Any) -> str:
    if value is None or (isinstance(value, list | tuple) and not value):
        return "-"
    return escaped(_csv_cell(value))

"""`regwatch status`: each watch as the log knows it, as a table for people or as JSON.

JSON: `{"watches": [{"name", "repository", "last_poll", "outcome", "error", "tags_known",
"next_due", "daemon"}]}`, times ISO 8601 UTC; the table shows the same columns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from regwatch.frontends.daemon import next_due
from regwatch.frontends.output import escaped
from regwatch.frontends.watchconfig import Watch

COLUMNS = (
    "name",
    "repository",
    "last_poll",
    "outcome",
    "error",
    "tags_known",
    "next_due",
    "daemon",
)


def rows(watches: Sequence[Watch], statuses: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per watch, `statuses` in the same order (`service.status`)."""
    return [
        {
            "name": watch.name,
            "repository": status.repository,
            "last_poll": _time(status.last_poll),
            "outcome": status.outcome,
            "error": status.error,
            "tags_known": status.tags_known,
            "next_due": _time(next_due(watch, status.last_poll)),
            "daemon": status.daemon,
        }
        for watch, status in zip(watches, statuses, strict=True)
    ]


def as_json(found: Sequence[dict[str, Any]]) -> str:
    return json.dumps({"watches": list(found)}, indent=2) + "\n"


def as_table(found: Sequence[dict[str, Any]]) -> str:
    """Aligned columns, one watch a line; each cell escaped to one line."""
    cells = [[c.upper().replace("_", " ") for c in COLUMNS]]
    cells += [[_cell(row[c]) for c in COLUMNS] for row in found]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        + "\n"
        for line in cells
    )


def _cell(value: Any) -> str:
    return "-" if value is None else escaped(str(value))


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None

"""`regwatch history` as users run it: a real registry changed with skopeo between
`regwatch watch --once` runs, then the store asked what happened, and what pointed where when.

One timeline is built per module (seven polls of two watches) and every test reads it:

    poll  app (semver mode, no platform)                 arm (tag `latest`, platform linux/arm64)
    1     1.0.0 and latest appear at image A             latest appears at index P1
    2     1.1.0 appears at B, latest moves A → B         latest → P2: only the amd64 child changed
    3     1.0.0 is pushed again (A2): a re-push          latest → P3: the arm64 child changed
    4     latest moves back to A: a rollback
    5     B is deleted: 1.1.0 disappears
    6     latest moves to index I1 (amd64, arm64)
    7     latest moves to index I2 (amd64, s390x)
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from regwatch.refs import Reference, Repository
from regwatch.store.migrate import open_store
from tests import images
from tests.e2e.steps import client_for
from tests.e2e.test_watch import regwatch, rows, skopeo, write_config
from tests.registries import RegistryServer


@dataclass
class Timeline:
    app: Repository
    arm: Repository
    config: Path
    store: Path
    digests: dict[str, str]
    marks: list[datetime]
    """marks[n]: a moment after poll n and before poll n+1 (marks[0]: before the first)."""

    @property
    def url(self) -> str:
        return f"sqlite:///{self.store}"


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def timeline(plain_registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> Timeline:
    directory = tmp_path_factory.mktemp("history")
    client = client_for(plain_registry)
    name = uuid.uuid4().hex[:10]
    app = Repository(plain_registry.host, f"history/{name}")
    arm = Repository(plain_registry.host, f"history/{name}-arm")
    store = directory / "trail.db"
    config = write_config(
        directory / "config.yaml",
        store,
        [
            # every known version is re-verified on each poll, so a re-push is seen at once
            {"name": "app", "source": {"repository": str(app)}, "every": "1h", "rescan": "1s"},
            {
                "name": "arm",
                "source": {
                    "repository": str(arm),
                    "tag": "latest",
                    "platform": {"os": "linux", "architecture": "arm64"},
                },
                "every": "1h",
            },
        ],
    )
    digests: dict[str, str] = {}
    marks = [datetime.now(UTC)]

    def push(repository: Repository, tag: str, item: images.Image | images.Index) -> str:
        return images.push(client, repository, tag, item)

    def retag(repository: Repository, source: str, tag: str) -> None:
        at = f"docker://{repository}"
        flags = ["--src-tls-verify=false", "--dest-tls-verify=false", "--all"]
        skopeo("copy", *flags, f"{at}{source}", f"{at}:{tag}")

    def digest(repository: Repository, tag: str) -> str:
        found = client.resolve(Reference(repository, tag=tag))
        assert found is not None
        return found.digest

    def poll() -> None:
        time.sleep(0.05)
        done = regwatch("watch", "-c", str(config), "--once")
        assert done.returncode == 0, done.stderr
        time.sleep(0.05)
        marks.append(datetime.now(UTC))

    def platforms(**children: str) -> images.Index:
        """An index of one image per architecture; an image's name makes its content."""
        return images.index(
            [images.image(name, architecture=arch) for arch, name in children.items()]
        )

    # poll 1
    digests["A"] = push(app, "1.0.0", images.image("a"))
    retag(app, ":1.0.0", "latest")
    digests["P1"] = push(arm, "latest", platforms(amd64="x1", arm64="y1"))
    poll()
    # poll 2
    digests["B"] = push(app, "1.1.0", images.image("b"))
    retag(app, ":1.1.0", "latest")
    digests["P2"] = push(arm, "latest", platforms(amd64="x2", arm64="y1"))
    poll()
    # poll 3
    push(app, "staging", images.image("a2"))
    retag(app, ":staging", "1.0.0")
    digests["A2"] = digest(app, "1.0.0")
    digests["P3"] = push(arm, "latest", platforms(amd64="x2", arm64="y2"))
    poll()
    # poll 4
    retag(app, f"@{digests['A']}", "latest")
    poll()
    # poll 5
    skopeo("delete", "--tls-verify=false", f"docker://{app}@{digests['B']}")
    poll()
    # poll 6
    push(app, "staging", platforms(amd64="m1", arm64="n1"))
    retag(app, ":staging", "latest")
    digests["I1"] = digest(app, "latest")
    poll()
    # poll 7
    push(app, "staging", platforms(amd64="m1", s390x="o1"))
    retag(app, ":staging", "latest")
    digests["I2"] = digest(app, "latest")
    poll()
    return Timeline(app, arm, config, store, digests, marks)


def history(*args: str) -> subprocess.CompletedProcess[str]:
    return regwatch("history", *args, timeout=60)


def answer(timeline: Timeline, *args: str, repository: Repository | None = None) -> Any:
    done = history(str(repository or timeline.app), "--store", timeline.url, *args)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return json.loads(done.stdout) if "json" in args else done.stdout


def summary(found: list[dict[str, Any]], timeline: Timeline) -> list[tuple[Any, ...]]:
    """(poll number, kind, tag, digest name, previous name, repush, rollback) per row."""
    names = {digest: name for name, digest in timeline.digests.items()}
    polled = [
        next(n for n, mark in enumerate(timeline.marks) if row_time(row) < mark) for row in found
    ]
    return sorted(
        (
            poll,
            row["kind"],
            row["tag"],
            names[row["digest"]],
            names.get(row["previous_digest"]),
            row["repush"],
            row["rollback"],
        )
        for poll, row in zip(polled, found, strict=True)
    )


def row_time(row: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(row["time"])


def test_every_movement_is_a_row_with_every_field(timeline: Timeline) -> None:
    found = answer(timeline, "--format", "json")

    assert summary(found, timeline) == [
        (1, "appeared", "1.0.0", "A", None, False, False),
        (1, "appeared", "latest", "A", None, False, False),
        (2, "appeared", "1.1.0", "B", None, False, False),
        (2, "moved", "latest", "B", "A", False, False),
        (3, "moved", "1.0.0", "A2", "A", True, False),
        (4, "moved", "latest", "A", "B", False, True),
        (5, "disappeared", "1.1.0", "B", None, False, False),
        (6, "moved", "latest", "I1", "A", False, False),
        (7, "moved", "latest", "I2", "I1", False, False),
    ]
    assert [row_time(row) for row in found] == sorted(row_time(row) for row in found)
    assert {row["repository"] for row in found} == {timeline.app.name}
    assert all(row["time"].endswith("Z") for row in found)
    assert all(row["platform_changed"] is None for row in found)
    last = found[-1]
    assert (last["platforms_added"], last["platforms_removed"]) == (
        ["linux/s390x"],
        ["linux/arm64"],
    )
    assert all(row["platforms_added"] == row["platforms_removed"] == [] for row in found[:-1])
    assert list(last) == [
        "time",
        "kind",
        "repository",
        "tag",
        "digest",
        "previous_digest",
        "repush",
        "rollback",
        "platforms_added",
        "platforms_removed",
        "platform_changed",
    ]


def test_a_platform_watch_tells_an_index_change_from_its_image_changing(
    timeline: Timeline,
) -> None:
    found = answer(timeline, "--format", "json", repository=timeline.arm)

    names = {digest: name for name, digest in timeline.digests.items()}
    assert [(row["kind"], names[row["digest"]], row["platform_changed"]) for row in found] == [
        ("appeared", "P1", False),
        ("moved", "P2", False),  # only the amd64 image changed
        ("moved", "P3", True),  # the arm64 image changed
    ]
    assert all(row["platforms_added"] == row["platforms_removed"] == [] for row in found)


def test_csv_has_a_header_lists_joined_by_spaces_and_null_empty(timeline: Timeline) -> None:
    as_json = answer(timeline, "--format", "json")
    table = list(csv.reader(io.StringIO(answer(timeline, "--format", "csv"))))

    assert table[0] == list(as_json[0])
    assert len(table) == len(as_json) + 1
    for line, row in zip(table[1:], as_json, strict=True):
        cells = dict(zip(table[0], line, strict=True))
        assert cells["digest"] == row["digest"]
        assert cells["previous_digest"] == (row["previous_digest"] or "")
        assert cells["repush"] == str(row["repush"]).lower()
        assert cells["platforms_added"] == " ".join(row["platforms_added"])
        assert cells["platform_changed"] == ""


def test_the_table_is_one_line_a_movement(timeline: Timeline) -> None:
    lines = answer(timeline).splitlines()

    assert lines[0].split()[:4] == ["TIME", "KIND", "TAG", "DIGEST"]
    assert len(lines) == 1 + 9
    assert "linux/s390x" in lines[-1]
    assert timeline.digests["I2"] in lines[-1]


def test_one_tag_and_a_window_of_time(timeline: Timeline) -> None:
    latest = answer(timeline, "--tag", "latest", "--format", "json")
    window = answer(
        timeline,
        "--since",
        iso(timeline.marks[1]),
        "--until",
        iso(timeline.marks[3]),
        "--format",
        "json",
    )
    relative = answer(
        timeline, "--since", "1d", "--until", iso(timeline.marks[7]), "--format", "json"
    )

    assert [(row["kind"], row["tag"]) for row in latest] == [("appeared", "latest")] + [
        ("moved", "latest")
    ] * 4
    assert sorted((row["kind"], row["tag"]) for row in window) == [
        ("appeared", "1.1.0"),
        ("moved", "1.0.0"),
        ("moved", "latest"),
    ]
    assert relative == answer(timeline, "--format", "json")


def test_at_a_moment_with_a_tag_is_its_digest_since_and_until(timeline: Timeline) -> None:
    everything = answer(timeline, "--format", "json")
    moves = [row["time"] for row in everything if row["tag"] == "latest"]

    found = answer(timeline, "--at", iso(timeline.marks[2]), "--tag", "latest", "--format", "json")
    current = answer(
        timeline, "--at", iso(timeline.marks[7]), "--tag", "latest", "--format", "json"
    )

    assert found == {"digest": timeline.digests["B"], "since": moves[1], "until": moves[2]}
    assert current == {"digest": timeline.digests["I2"], "since": moves[4], "until": None}


def test_at_a_moment_without_a_tag_lists_the_tags_present(timeline: Timeline) -> None:
    found = answer(timeline, "--at", iso(timeline.marks[2]), "--format", "json")
    later = answer(timeline, "--at", iso(timeline.marks[5]), "--format", "csv")

    assert [(row["tag"], row["digest"]) for row in found] == [
        ("1.0.0", timeline.digests["A"]),
        ("1.1.0", timeline.digests["B"]),
        ("latest", timeline.digests["B"]),
    ]
    assert all(row["until"] is not None for row in found)
    lines = later.splitlines()
    assert lines[0] == "tag,digest,since,until"
    assert [line.split(",")[0] for line in lines[1:]] == ["1.0.0", "latest"]
    assert lines[1].endswith(",")  # 1.0.0 still points at A2: until is empty


@pytest.mark.parametrize(
    ("tag", "mark", "reason"),
    [
        ("1.1.0", 5, "it disappeared at "),
        ("latest", 0, "it first appeared at "),
        ("9.9.9", 7, "the store never saw it"),
    ],
)
def test_a_tag_absent_at_the_moment_is_one_line_and_exit_1(
    timeline: Timeline, tag: str, mark: int, reason: str
) -> None:
    moment = iso(timeline.marks[mark])
    done = history(str(timeline.app), "--store", timeline.url, "--at", moment, "--tag", tag)

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith(f"regwatch: tag {tag} of {timeline.app} was not present at ")
    assert reason in done.stderr
    assert done.stderr.count("\n") == 1


def test_the_config_names_the_same_store(timeline: Timeline) -> None:
    done = history(str(timeline.app), "--config", str(timeline.config), "--format", "json")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == answer(timeline, "--format", "json")


def test_a_repository_the_store_never_saw_is_an_empty_answer(timeline: Timeline) -> None:
    never = Repository(timeline.app.registry, "history/never-seen")

    assert answer(timeline, "--format", "json", repository=never) == []
    assert answer(timeline, "--format", "csv", repository=never).count("\n") == 1
    assert answer(timeline, "--at", "1d", "--format", "json", repository=never) == []


def test_a_store_that_does_not_exist_is_one_line_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"

    done = history("alpine", "--store", f"sqlite:///{missing}")

    assert done.returncode == 1
    assert (
        done.stderr
        == f"regwatch: store sqlite:///{missing} does not exist (nothing recorded there)\n"
    )
    assert not missing.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--at", "yesterday"], "regwatch: --at: 'yesterday' is not a time"),
        (["--at", "1d", "--since", "2d"], "regwatch: --at answers for one moment"),
        (["--tag=bad!"], "regwatch: invalid tag 'bad!'"),
    ],
)
def test_bad_arguments_are_one_line(timeline: Timeline, args: list[str], message: str) -> None:
    done = history(str(timeline.app), "--store", timeline.url, *args)

    assert done.returncode == 1
    assert done.stderr.startswith(message)
    assert done.stderr.count("\n") == 1


def test_reading_history_changes_nothing_in_the_store(timeline: Timeline) -> None:
    before = rows(timeline.store)

    answer(timeline, "--format", "json")
    answer(timeline, "--at", "1h", "--format", "json")

    assert rows(timeline.store) == before


def test_retention_keeps_every_tag_event_and_every_answer(timeline: Timeline) -> None:
    asked = [
        ["--format", "json"],
        ["--format", "csv"],
        ["--tag", "latest", "--format", "json"],
        *(["--at", iso(mark), "--format", "json"] for mark in timeline.marks),
        ["--at", iso(timeline.marks[3]), "--tag", "1.0.0", "--format", "json"],
    ]
    before = [answer(timeline, *args) for args in asked]
    arm_before = answer(timeline, "--format", "json", repository=timeline.arm)
    tag_events = [row for row in rows(timeline.store) if not row[0].endswith("#runs")]
    runs_before = len(rows(timeline.store)) - len(tag_events)

    with open_store(timeline.url) as store:
        dropped = store.drop_runs(datetime.now(UTC) + timedelta(days=1))

    assert dropped == runs_before - 2  # each run stream keeps its newest run
    assert [row for row in rows(timeline.store) if not row[0].endswith("#runs")] == tag_events
    assert [answer(timeline, *args) for args in asked] == before
    assert answer(timeline, "--format", "json", repository=timeline.arm) == arm_before

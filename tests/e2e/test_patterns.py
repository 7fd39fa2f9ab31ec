"""`tag_regex`, `label_regex` and `annotation_regex` through the real CLI: RE2, as Go reads it."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from regwatch.refs import Repository
from tests import images
from tests.e2e.steps import Run, assert_fails, client_for, source_for, step
from tests.registries import RegistryServer

SLOW = "a" * 40 + "-"
"""A tag on which a backtracking `(a+)+$` takes longer than any test may run."""

TAGS = ("1.0.0", "v2", "build-7", "Build-8", "grey", "gray", "latest", "aaaa", SLOW)


@pytest.fixture(scope="module")
def tagged(plain_registry: RegistryServer) -> str:
    """One repository holding every tag of TAGS (a few images between them)."""
    client = client_for(plain_registry)
    repo = Repository(plain_registry.host, f"patterns/{uuid.uuid4().hex[:10]}")
    for number, tag in enumerate(TAGS):
        images.push(client, repo, tag, images.image(f"pattern-{number % 3}"))
    return str(repo)


def only_our_lines(run: Run) -> None:
    """RE2 writes nothing of its own (it would log from C++ straight to fd 2)."""
    for line in run.stderr.splitlines():
        assert line.startswith(("error: ", "INFO: ")), run.stderr


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("[[:digit:]]", {"1.0.0", "v2", "build-7", "Build-8"}),
        ("[[:upper:]]", {"Build-8"}),
        (r"\pN\z", {"1.0.0", "v2", "build-7", "Build-8"}),
        (r"^\pL+$", {"grey", "gray", "latest", "aaaa"}),
        ("(?i)^build-", {"build-7", "Build-8"}),
        ("gr(a|e)y", {"grey", "gray"}),
        ("(a+)+$", {"aaaa"}),
        ("^(a|aa)+$", {"aaaa"}),
        (r"\Q1.0\E", {"1.0.0"}),
    ],
)
def test_check_selects_tags_as_go_does(
    plain_registry: RegistryServer, tagged: str, pattern: str, expected: set[str]
) -> None:
    started = time.monotonic()
    run = step("check", {"source": source_for(plain_registry, tagged, tag_regex=pattern)})
    assert run.code == 0, run.stderr
    assert {version["tag"] for version in run.answer} == expected
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(v)\1", r"invalid escape sequence: \1"),
        ("(?<=v)2", "invalid perl operator: (?<="),
        ("v(?=2)", "invalid perl operator: (?="),
        (r"latest\Z", r"invalid escape sequence: \Z"),
        ("build-(", "missing ): build-("),
        ("\n(", r"missing ): \x0a("),
    ],
)
def test_check_refuses_what_go_refuses_before_any_request(
    plain_registry: RegistryServer, tagged: str, tmp_path: Path, pattern: str, reason: str
) -> None:
    database = tmp_path / "none.db"
    source = source_for(plain_registry, tagged, tag_regex=pattern, store=f"sqlite:///{database}")
    run = step("check", {"source": source})
    assert_fails(run, "invalid regex pattern: tag_regex", reason)
    only_our_lines(run)
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone() == (0,)


def labelled(name: str, labels: dict[str, str], annotations: dict[str, str]) -> images.Image:
    item = images.image(name)
    config = json.loads(item.config.data)
    config["config"]["Labels"] = labels
    blob = images.Blob(item.config.media_type, json.dumps(config).encode())
    manifest = json.loads(item.manifest.data)
    manifest["config"] = blob.descriptor()
    manifest["annotations"] = annotations
    return images.Image(
        blob, item.layers, images.Blob(item.manifest.media_type, json.dumps(manifest).encode())
    )


LABELS = {"build.7": "b", "Build-Number": "n", "org.version": "v", "ümlaut": "u", "a\nb": "x"}
ANNOTATIONS = {"org.opencontainers.image.source": "s", "Revision2": "r", "z": "z"}


@pytest.fixture(scope="module")
def labelled_image(plain_registry: RegistryServer) -> tuple[str, str]:
    item = labelled("labels", LABELS, ANNOTATIONS)
    repo = Repository(plain_registry.host, f"patterns/{uuid.uuid4().hex[:10]}")
    images.push(client_for(plain_registry), repo, "v1", item)
    return str(repo), item.digest


@pytest.mark.parametrize(
    ("field", "pattern", "expected"),
    [
        ("label_regex", "[[:digit:]]", ["build.7"]),
        ("label_regex", "(?i)^build", ["Build-Number", "build.7"]),
        ("label_regex", r"\pN\z", ["build.7"]),
        ("label_regex", r"^\p{Latin}+$", ["ümlaut"]),
        ("label_regex", r"^a.b$", []),
        ("label_regex", "(?s)^a.b$", ["a\nb"]),
        ("label_regex", "(a+)+$", []),
        ("annotation_regex", r"[[:digit:]]\z", ["Revision2"]),
        ("annotation_regex", r"^org\.", ["org.opencontainers.image.source"]),
    ],
)
def test_in_emits_matching_metadata_as_go_does(
    plain_registry: RegistryServer,
    labelled_image: tuple[str, str],
    tmp_path: Path,
    field: str,
    pattern: str,
    expected: list[str],
) -> None:
    repo, digest = labelled_image
    source = source_for(plain_registry, repo, **{field: pattern})
    run = step(
        "in",
        {"source": source, "params": {"skip_download": True}, "version": {"digest": digest}},
        tmp_path,
    )
    assert run.code == 0, run.stderr
    names = [entry["name"] for entry in run.answer["metadata"]]
    assert names == ["repository", "tag", *expected]


@pytest.mark.parametrize("field", ["label_regex", "annotation_regex"])
@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(o)\1", r"invalid escape sequence: \1"),
        ("(?<!x)y", "invalid perl operator: (?<!"),
        ("(\x00", r"missing ): (\x00"),
        ("x{2000}", "invalid repetition size: {2000}"),
    ],
)
def test_in_refuses_what_go_refuses(
    plain_registry: RegistryServer,
    labelled_image: tuple[str, str],
    tmp_path: Path,
    field: str,
    pattern: str,
    reason: str,
) -> None:
    repo, digest = labelled_image
    source = source_for(plain_registry, repo, **{field: pattern})
    run = step(
        "in",
        {"source": source, "params": {"skip_download": True}, "version": {"digest": digest}},
        tmp_path,
    )
    assert_fails(run, f"invalid {field}", reason)
    only_our_lines(run)

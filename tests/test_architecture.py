"""The import-direction table of docs/architecture.md, checked against the code with `ast`.

The table here *is* the architecture: a module that is not in it, or imports across a line it
draws, fails this test, so the picture in the docs cannot drift from the code.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "regwatch"

VOCABULARY = (
    "regwatch.errors",
    "regwatch.refs",
    "regwatch.versioning",
    "regwatch.specs",
    "regwatch.selection",
    "regwatch.patterns",
)
"""The domain's words. `regwatch.config` (Concourse payloads) is not among them: only front
ends read a payload, and they hand the layers below `specs` values."""
IMAGE_FORMATS = (
    "regwatch.image.model",
    "regwatch.image.digests",
    "regwatch.image.mediatypes",
    "regwatch.image.documents",
    "regwatch.image.manifests",
)
EVENTS = ("regwatch.events",)

# (module or package prefix, regwatch modules it may import, third-party packages it may import)
RULES: list[tuple[str, tuple[str, ...], frozenset[str]]] = [
    ("regwatch.__init__", (), frozenset()),
    ("regwatch.__main__", ("regwatch.frontends.cli",), frozenset()),
    ("regwatch.errors", (), frozenset()),
    ("regwatch.refs", VOCABULARY, frozenset({"pydantic"})),
    ("regwatch.versioning", VOCABULARY, frozenset({"pydantic", "semver"})),
    ("regwatch.config", (*VOCABULARY, "regwatch.durations"), frozenset({"pydantic", "semver"})),
    ("regwatch.specs", ("regwatch.refs",), frozenset()),
    ("regwatch.durations", (), frozenset()),
    ("regwatch.selection", VOCABULARY, frozenset()),
    ("regwatch.patterns", ("regwatch.errors",), frozenset({"re2"})),
    ("regwatch.connections", (), frozenset({"urllib3"})),
    ("regwatch.retrying", ("regwatch.errors",), frozenset()),
    ("regwatch.ratelimits", (), frozenset()),
    ("regwatch.rescan", ("regwatch.versioning",), frozenset()),
    (
        "regwatch.net",
        ("regwatch.errors", "regwatch.connections", "regwatch.retrying", "regwatch.ratelimits"),
        frozenset({"requests", "urllib3"}),
    ),
    ("regwatch.gofilepath", ("regwatch.errors",), frozenset()),
    ("regwatch.gojson", (), frozenset()),
    (
        "regwatch.image.",
        (*VOCABULARY, "regwatch.gojson", "regwatch.image."),
        frozenset({"pydantic_core", "zstandard", "zlib_ng"}),
    ),
    (
        "regwatch.registry.credentials",
        (*VOCABULARY, "regwatch.net", "regwatch.registry."),
        frozenset({"boto3", "botocore"}),
    ),
    (
        "regwatch.registry.ecr",
        (*VOCABULARY, "regwatch.registry."),
        frozenset({"boto3", "botocore"}),
    ),
    (
        "regwatch.registry.acr",
        (*VOCABULARY, "regwatch.net", "regwatch.registry."),
        frozenset({"azure"}),
    ),
    (
        "regwatch.registry.",
        (*VOCABULARY, "regwatch.net", *IMAGE_FORMATS, "regwatch.registry."),
        frozenset(),
    ),
    (
        "regwatch.trust.",
        (*VOCABULARY, "regwatch.net", "regwatch.registry.", "regwatch.trust."),
        frozenset({"cryptography"}),
    ),
    ("regwatch.observe", (*VOCABULARY, "regwatch.rescan"), frozenset()),
    ("regwatch.events", VOCABULARY, frozenset({"pydantic", "semver"})),
    (
        "regwatch.decide",
        (*VOCABULARY, *EVENTS, "regwatch.observe"),
        frozenset({"pydantic", "semver"}),
    ),
    (
        "regwatch.projections.history",
        (*VOCABULARY, *EVENTS, "regwatch.rescan", "regwatch.store.records"),
        frozenset({"pydantic", "semver"}),
    ),
    (
        "regwatch.projections.",
        (*VOCABULARY, *EVENTS, "regwatch.decide", "regwatch.observe", "regwatch.projections."),
        frozenset({"pydantic", "semver"}),
    ),
    (
        "regwatch.store.",
        (*VOCABULARY, *EVENTS, "regwatch.store."),
        frozenset({"sqlalchemy", "alembic"}),
    ),
    ("regwatch.service.", ("regwatch.",), frozenset()),
    (
        "regwatch.notify.",
        (
            *VOCABULARY,
            *EVENTS,
            "regwatch.net",
            "regwatch.projections.history",
            "regwatch.store.eventstore",
            "regwatch.store.wakeups",
            "regwatch.notify.",
        ),
        frozenset({"apprise"}),
    ),
    (
        "regwatch.frontends.notify",
        (
            "regwatch.service",
            "regwatch.config",
            "regwatch.errors",
            "regwatch.projections.",
            "regwatch.net",
            "regwatch.frontends.",
        ),
        frozenset(),
    ),
    (
        "regwatch.frontends.",
        (
            "regwatch.service",
            "regwatch.config",
            "regwatch.specs",
            "regwatch.refs",
            "regwatch.net",
            "regwatch.retrying",
            "regwatch.durations",
            "regwatch.errors",
            "regwatch.projections.",
            "regwatch.registry.dockerconfig",
            "regwatch.registry.credentials",
            "regwatch.registry.ecr",
            "regwatch.registry.acr",
            "regwatch.notify.",
            "regwatch.store.leases",
            "regwatch.frontends.",
        ),
        frozenset(
            {"apscheduler", "prometheus_client", "pydantic", "pydantic_core", "rich", "yaml"}
        ),
    ),
]


def module_name(path: Path) -> str:
    """Dotted name; a package's `__init__` keeps its name so package rules cover it."""
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    )
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.add(node.module)
    return found


def rule_for(module: str) -> tuple[str, tuple[str, ...], frozenset[str]] | None:
    for rule in RULES:
        prefix = rule[0]
        if module == prefix or (prefix.endswith(".") and module.startswith(prefix)):
            return rule
    return None


def allowed(imported: str, prefixes: tuple[str, ...]) -> bool:
    """`regwatch.frontends.` covers its modules and the package itself (`from … import x`)."""
    return any(
        imported in (p, p.rstrip(".")) or (p.endswith(".") and imported.startswith(p))
        for p in prefixes
    )


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_imports_follow_the_architecture(path: Path) -> None:
    module = module_name(path)
    rule = rule_for(module)
    assert rule is not None, f"{module} is not in the architecture table: add it (and to the docs)"
    _, own, third_party = rule
    for imported in sorted(imports_of(path)):
        top = imported.partition(".")[0]
        if top in sys.stdlib_module_names or imported == "__future__":
            continue
        if top == "regwatch":
            if imported == "regwatch":  # the version string
                continue
            assert allowed(imported, own), f"{module} must not import {imported}"
        else:
            assert top in third_party, f"{module} must not import third-party {top}"


def test_only_front_ends_read_concourse_payloads() -> None:
    """Below the front ends a watch is a `specs.WatchSpec`, whoever asked for it."""
    readers = {
        module_name(path)
        for path in MODULES
        if "regwatch.config" in imports_of(path)
        and not module_name(path).startswith("regwatch.frontends.")
    }
    assert readers == set()


def test_every_module_starts_with_a_docstring() -> None:
    missing = [
        module_name(p) for p in MODULES if ast.get_docstring(ast.parse(p.read_text())) is None
    ]
    assert missing == []


HTTP_LIBRARIES = frozenset({"requests", "urllib3"})
HTTP_SEAM = frozenset({"regwatch.net", "regwatch.connections"})


def test_only_the_http_seam_touches_the_http_libraries() -> None:
    """Everything else sees our own answer types and errors, so the library can change."""
    touching = sorted(
        module_name(p)
        for p in MODULES
        if any(name.partition(".")[0] in HTTP_LIBRARIES for name in imports_of(p))
    )
    assert set(touching) <= HTTP_SEAM, touching

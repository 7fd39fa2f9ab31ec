"""The wheel's hand-written package list covers every package in the tree."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_shipped() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(config["packages"])
    mapped = {name: ROOT / path for name, path in config["package-dir"].items()}
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "regwatch").rglob("__init__.py")
    }
    for name, directory in mapped.items():  # script folders: any folder holding Python files
        found |= {
            ".".join([name, *script.parent.relative_to(directory).parts])
            for script in directory.rglob("*.py")
        }
    assert declared == found

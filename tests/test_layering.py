"""DESIGN.md section 1: wal <- checkpoint <- dstream <- chaos; imports point down only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["wal", "checkpoint", "dstream", "chaos"]


def imported_top_packages(path: Path) -> set[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update((alias.name.split(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add((node.module.split(".")[0], node.lineno))
    return found


def violations(package: str) -> list[str]:
    forbidden = set(LAYERS[LAYERS.index(package) + 1 :])
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for top, line in imported_top_packages(path):
            if top in forbidden:
                out.append(f"{path.relative_to(ROOT)}:{line} imports {top}")
    return out


@pytest.mark.parametrize("package", LAYERS)
def test_imports_point_down_only(package: str) -> None:
    assert violations(package) == []


def test_checker_catches_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom dstream.rdd import RDD\nimport chaos.checker\n")
    assert imported_top_packages(bad) >= {("dstream", 2), ("chaos", 3)}

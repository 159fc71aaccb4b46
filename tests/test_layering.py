"""The layering rules: imports point down only (wal <- checkpoint <- dstream <- chaos), and durable
local I/O happens only inside the storage seam (`wal/storage/`), so a wrapping storage sees it all."""

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


# -- durable local I/O only inside the storage seam --------------------------------------------

SEAM = ROOT / "wal" / "storage"
DURABLE_CALLS = {
    "os": {"write", "writev", "pwrite", "fsync", "fdatasync", "ftruncate", "replace", "rename", "link"},
    "fcntl": {"flock", "lockf"},
}


def durable_io_calls(path: Path) -> set[tuple[str, int]]:
    """Every use of a durable-I/O function of `os`/`fcntl` in the file: (module.name, line)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    modules: dict[str, str] = {}  # local name -> "os" / "fcntl"
    found: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update((a.asname or a.name, a.name) for a in node.names if a.name in DURABLE_CALLS)
        elif isinstance(node, ast.ImportFrom) and node.module in DURABLE_CALLS and node.level == 0:
            names = DURABLE_CALLS[node.module]
            found.update((f"{node.module}.{a.name}", node.lineno) for a in node.names if a.name in names)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = modules.get(node.value.id)
            if module is not None and node.attr in DURABLE_CALLS[module]:
                found.add((f"{module}.{node.attr}", node.lineno))
    return found


def durable_io_outside_the_seam() -> list[str]:
    out = []
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            if SEAM in path.parents:
                continue
            for call, line in sorted(durable_io_calls(path)):
                out.append(f"{path.relative_to(ROOT)}:{line} uses {call}")
    return out


def test_durable_local_io_happens_only_in_the_storage_seam() -> None:
    assert durable_io_outside_the_seam() == []


def test_the_seam_itself_is_seen_by_the_scan() -> None:
    calls = {call for call, _ in durable_io_calls(SEAM / "local.py")}
    assert {"os.write", "os.fsync", "os.fdatasync", "os.replace", "os.link", "fcntl.flock"} <= calls


def test_checker_catches_planted_durable_io(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import os\nimport os as o\nfrom fcntl import flock\nimport fcntl\n"
        "os.fsync(3)\no.replace('a', 'b')\nfcntl.flock(3, 2)\nos.path.join('a')\nprint(os.getpid())\n"
    )
    assert durable_io_calls(bad) == {
        ("fcntl.flock", 3),
        ("os.fsync", 5),
        ("os.replace", 6),
        ("fcntl.flock", 7),
    }

"""Imports point down only: between the four packages, and between the declared layers inside `dstream/`.

Between packages: wal <- checkpoint <- dstream <- chaos. Inside `dstream/` (docs/architecture.md):

    base       errors, clock, config, master, pickling
    backends   execution backends and the executor environment
    rdd        RDDs and the engine Context that makes them
    sinks      transactional sinks (RDD-level: they know no DStream)
    core       the streaming core: graph, job generator and scheduler, listener bus, DStream operations
    inputs     sources that plug into the core: receivers, socket and file streams, recovery
    api        the facade: StreamingContext, the package roots, the CLI, the demo

A module may import its own layer and the layers below. Every import counts, including those inside
functions and under `if TYPE_CHECKING:`. A function-local import is allowed only of a module in the same
directory (a DStream method building a DStream subclass defined beside it, as PySpark's do): one across
directories or layers would hide a cycle.

And durable local I/O happens only inside the storage seam (`wal/storage/`), so a wrapping storage sees
it all.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["wal", "checkpoint", "dstream", "chaos"]

LAYERS = ["base", "backends", "rdd", "sinks", "core", "inputs", "api"]
# Module-name prefix -> layer; the longest matching prefix wins.
LAYER_OF_PREFIX = {
    "dstream.errors": "base",
    "dstream.clock": "base",
    "dstream.config": "base",
    "dstream.master": "base",
    "dstream.pickling": "base",
    "dstream.storage_level": "base",  # StorageLevel: block managers (backends) take one with every put
    "dstream.accumulators": "base",  # shared variables: tasks and the DAG scheduler carry them
    "dstream.broadcast": "backends",  # a service of the executor environment
    "dstream.version": "base",
    "dstream.backends": "backends",
    "dstream.rdd": "rdd",
    "dstream.context": "rdd",
    "dstream.sinks": "sinks",
    "dstream.streaming": "core",
    "dstream.streaming.socket": "inputs",
    "dstream.streaming.file_input": "inputs",
    "dstream.receiver": "inputs",
    "dstream.recovery": "inputs",
    "dstream.client": "inputs",
    "dstream.client_addresses": "inputs",  # where a PushClient connects
    "dstream": "api",  # the package root re-exports the API
    "dstream.streaming.__init__": "api",  # `from dstream.streaming import StreamingContext`
    "dstream.streaming_context": "api",
    "dstream.cli": "api",
    "dstream.demo": "api",
}


def layer_of(module: str) -> str:
    """The declared layer of a dstream module (`pkg.__init__` names a package's own __init__ file)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYER_OF_PREFIX:
            return LAYER_OF_PREFIX[prefix]
    raise AssertionError(f"{module} is in no declared layer: add it to LAYER_OF_PREFIX")


def module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root).with_suffix("")
    return ".".join(rel.parts)


def imported_modules(path: Path) -> list[tuple[str, int, bool]]:
    """(module imported, line, inside a function) for every absolute import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            local = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append((child.module, child.lineno, in_function))
            visit(child, local)

    visit(tree, False)
    return found


def imported_top_packages(path: Path) -> set[tuple[str, int]]:
    return {(module.split(".")[0], line) for module, line, _ in imported_modules(path)}


def package_violations(package: str, root: Path = ROOT) -> list[str]:
    forbidden = set(PACKAGES[PACKAGES.index(package) + 1 :])
    out = []
    for path in sorted((root / package).rglob("*.py")):
        for top, line in imported_top_packages(path):
            if top in forbidden:
                out.append(f"{path.relative_to(root)}:{line} imports {top}")
    return out


def own_layer_name(path: Path, root: Path) -> str:
    name = module_name(path, root)
    return name[: -len(".__init__")] + ".__init__" if name.endswith(".__init__") else name


def layer_violations(root: Path = ROOT) -> list[str]:
    out = []
    for path in sorted((root / "dstream").rglob("*.py")):
        name = own_layer_name(path, root)
        if name == "dstream.__init__":
            name = "dstream"
        mine = LAYERS.index(layer_of(name))
        directory = name.rsplit(".", 1)[0] if not name.endswith(".__init__") else name[: -len(".__init__")]
        for module, line, in_function in imported_modules(path):
            if module.split(".")[0] != "dstream":
                continue
            theirs = LAYERS.index(layer_of(module))
            where = f"{path.relative_to(root)}:{line}"
            if theirs > mine:
                out.append(f"{where}: {layer_of(name)} layer imports {module} ({layer_of(module)} layer)")
            elif in_function and module.rsplit(".", 1)[0] != directory:
                out.append(f"{where}: function-local import of {module} from another directory")
    return out


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_down_only(package: str) -> None:
    assert package_violations(package) == []


def test_layers_inside_dstream_point_down_only() -> None:
    assert layer_violations() == []


def test_checker_catches_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom dstream.rdd import RDD\nimport chaos.checker\n")
    assert imported_top_packages(bad) >= {("dstream", 2), ("chaos", 3)}


def plant(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_layer_check_fails_on_a_planted_upward_import(tmp_path: Path) -> None:
    plant(tmp_path, "dstream/__init__.py", "")
    plant(tmp_path, "dstream/streaming/graph.py", "from dstream.receiver.input_stream import X\n")
    plant(tmp_path, "dstream/rdd/rdd.py", "def f():\n    from dstream.context import Context\n")
    plant(tmp_path, "dstream/receiver/push.py", "from dstream.streaming.graph import DStreamGraph\n")
    found = layer_violations(tmp_path)
    assert any("streaming/graph.py:1: core layer imports dstream.receiver.input_stream" in v for v in found)
    assert any("rdd/rdd.py:2: function-local import of dstream.context" in v for v in found)
    assert not any("receiver/push.py" in v for v in found)  # inputs may import the core


def test_every_dstream_module_is_in_a_declared_layer() -> None:
    for path in (ROOT / "dstream").rglob("*.py"):
        layer_of(own_layer_name(path, ROOT))


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
    for package in PACKAGES:  # every package but the seam itself (LAYERS are dstream's, not directories)
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

"""Capture the public names of PySpark's streaming-facing classes into tests/data/pyspark_public_names.json.

Run where PySpark's source is at hand, either an installed ``pyspark`` or a source tree::

    python tools/capture_pyspark_names.py                      # the installed pyspark
    python tools/capture_pyspark_names.py /path/to/spark       # a checkout (python/pyspark inside)
    python tools/capture_pyspark_names.py /path/to/pyspark     # an unpacked package directory

The classes are read with `ast`, never imported, so no JVM or py4j is needed. A class's public names
are the methods and properties it defines, the attributes its methods set on ``self`` (SparkContext
sets ``master`` and ``appName`` in a helper of ``__init__``) and its class-level attributes, all
without a leading underscore. The compatibility test
(tests/test_pyspark_compat.py) checks dstream's classes and docs/pyspark-compat.md against the file.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import sys
from pathlib import Path

# dstream's name for each class -> PySpark module, and where the class is defined (newer layout first).
CLASSES: dict[str, tuple[str, tuple[str, ...]]] = {
    "StreamingContext": ("pyspark.streaming", ("streaming/context.py",)),
    "DStream": ("pyspark.streaming", ("streaming/dstream.py",)),
    "StreamingListener": ("pyspark.streaming", ("streaming/listener.py",)),
    "SparkContext": ("pyspark", ("core/context.py", "context.py")),
    "RDD": ("pyspark", ("core/rdd.py", "rdd.py")),
    "Broadcast": ("pyspark", ("core/broadcast.py", "broadcast.py")),
    "Accumulator": ("pyspark", ("accumulators.py",)),
    "AccumulatorParam": ("pyspark", ("accumulators.py",)),
}
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "pyspark_public_names.json"


def package_dir(location: str | None) -> Path:
    """The ``pyspark`` package directory: in ``location`` (a checkout or the package), else installed."""
    if location is None:
        spec = importlib.util.find_spec("pyspark")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("pyspark is not installed here; pass a Spark checkout or a pyspark directory")
        return Path(next(iter(spec.submodule_search_locations)))
    root = Path(location)
    for candidate in (root / "python" / "pyspark", root / "pyspark", root):
        if (candidate / "streaming" / "dstream.py").is_file():
            return candidate
    raise SystemExit(f"{location}: no pyspark sources there (looked for streaming/dstream.py)")


def public_names(tree: ast.Module, class_name: str) -> list[str]:
    """The public names the class ``class_name`` in ``tree`` defines."""
    node = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name), None)
    if node is None:
        raise SystemExit(f"class {class_name} not found")
    names: set[str] = set()
    for item in node.body:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(item.name)
            names.update(_self_attributes(item))
        elif isinstance(item, ast.Assign):
            names.update(t.id for t in item.targets if isinstance(t, ast.Name))
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            names.add(item.target.id)
    return sorted(n for n in names if not n.startswith("_"))


def _self_attributes(method: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    found = set()
    for node in ast.walk(method):
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign)
            else []
        )
        for target in targets:
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
            ):
                found.add(target.attr)
    return found


def pyspark_version(pkg: Path) -> str:
    tree = ast.parse((pkg / "version.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Constant):
            return str(node.value.value)
    return "unknown"


def capture(pkg: Path) -> dict[str, object]:
    classes: dict[str, object] = {}
    for name, (module, candidates) in CLASSES.items():
        path = next((pkg / c for c in candidates if (pkg / c).is_file()), None)
        if path is None:
            raise SystemExit(f"{pkg}: none of {candidates} exists")
        tree = ast.parse(path.read_text())
        classes[name] = {"module": module, "names": public_names(tree, name)}
    return {"pyspark_version": pyspark_version(pkg), "classes": classes}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "location", nargs="?", help="Spark checkout or pyspark directory (default: installed)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    data = capture(package_dir(args.location))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    counts = {k: len(v["names"]) for k, v in data["classes"].items()}  # type: ignore[index]
    print(f"wrote {args.out}: pyspark {data['pyspark_version']}, {counts}", file=sys.stderr)


if __name__ == "__main__":
    main()

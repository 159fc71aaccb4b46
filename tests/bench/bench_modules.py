"""The benchmark scripts' modules (bench/), loaded by path for their tests: bench/ also holds wal.py and
checkpoint.py, which would shadow the packages of those names if bench/ were put on sys.path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load(name: str) -> Any:
    """bench/<name>.py as the module `name` (registered, so that a bench module importing it by that name
    gets this one); loaded once."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

"""Pipeline fingerprints stored in metadata checkpoints, and the check getOrCreate makes on recovery.

On recovery the setup function is not called (the graph comes from the checkpoint), so the only code
the restarting program offers is the setup function itself. Its fingerprint hashes the code it would
run: its own code object (bytecode, names, constants, nested code), the functions its closure and
defaults hold, and the module-level functions it names (recursively, bounded). A changed update
function, a new operation or a changed constant in setup changes the fingerprint, and the error names
which functions changed. Line numbers and comments do not count.

The graph's structural description (stream types, ids, parent links, intervals, function code hashes)
is stored too, for inspection and for naming streams in messages.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from functools import partial
from typing import Any

from checkpoint.fingerprint import CodeFingerprint, code_digest, compare_fingerprints, fingerprint_description
from dstream.errors import DStreamValueError

FUNCTIONS_MAX = 200
_FUNCTION_ATTRS = ("_func", "_step", "_reduce_func", "_inv_func", "_reader", "_update_func")


class CheckpointMismatchError(DStreamValueError):
    """The checkpoint was written by a different pipeline than the one restoring it."""


def _module_globals(fn: types.FunctionType) -> list[tuple[str, Any]]:
    names: list[str] = []
    stack = [fn.__code__]
    while stack:
        code = stack.pop()
        names.extend(code.co_names)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return [(n, fn.__globals__[n]) for n in sorted(set(names)) if n in fn.__globals__]


def _referenced(fn: types.FunctionType) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for i, cell in enumerate(fn.__closure__ or ()):
        try:
            found.append((f"closure[{fn.__code__.co_freevars[i]}]", cell.cell_contents))
        except ValueError:  # an empty cell
            continue
    found.extend((f"default[{i}]", d) for i, d in enumerate(fn.__defaults__ or ()))
    found.extend(_module_globals(fn))
    return found


def describe_functions(root: Callable[..., Any], label: str) -> dict[str, str]:
    """`{path: code digest}` of `root` and the Python functions it reaches (at most FUNCTIONS_MAX)."""
    out: dict[str, str] = {}
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [(label, root)]
    while stack and len(out) < FUNCTIONS_MAX:
        path, fn = stack.pop()
        if isinstance(fn, partial):
            stack.append((f"{path}.func", fn.func))
            continue
        if not isinstance(fn, types.FunctionType) or id(fn) in seen:
            continue
        seen.add(id(fn))
        out[path] = code_digest(fn.__code__)
        for name, value in _referenced(fn):
            if isinstance(value, types.FunctionType):
                stack.append((f"{path}>{value.__qualname__}", value))
            elif isinstance(value, partial):
                stack.append((f"{path}>{name}", value))
    return out


def setup_fingerprint(setup: Callable[..., Any]) -> CodeFingerprint:
    """The fingerprint of a setup function and the code it reaches."""
    name = getattr(setup, "__qualname__", type(setup).__name__)
    return fingerprint_description({"setup": describe_functions(setup, name)})


def graph_fingerprint(graph: Any) -> CodeFingerprint:
    """A structural fingerprint of a DStreamGraph (types, ids, parents, intervals, function code)."""
    streams = {}
    for stream in graph.streams:
        entry: dict[str, Any] = {
            "type": type(stream).__name__,
            "parents": [p._id for p in stream._parents],
            "slide_ms": stream._slide_ms,
            "checkpoint_ms": stream._checkpoint_ms,
        }
        for attr in _FUNCTION_ATTRS:
            fn = getattr(stream, attr, None)
            if fn is not None and callable(fn):
                entry[attr] = describe_functions(fn, attr)
        streams[f"stream{stream._id}"] = entry
    return fingerprint_description({"batch_ms": graph.batch_ms, "streams": streams})


def check_setup_fingerprint(stored: dict[str, Any] | None, setup: Callable[..., Any], where: str) -> None:
    """Raise CheckpointMismatchError naming what changed if `setup` differs from the stored one.

    A checkpoint without a stored setup fingerprint (written by a context not made by getOrCreate)
    is not checked.
    """
    if not stored:
        return
    old = CodeFingerprint.from_json(stored)
    diffs = compare_fingerprints(old, setup_fingerprint(setup))
    if diffs:
        shown = "; ".join(diffs[:10]) + (f"; ... {len(diffs) - 10} more" if len(diffs) > 10 else "")
        raise CheckpointMismatchError(
            f"checkpoint {where} was written by a different pipeline: the setup function's code changed "
            f"({shown}). Restore with the original code, or start from a new checkpoint directory."
        )

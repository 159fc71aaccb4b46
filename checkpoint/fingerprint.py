"""Code fingerprints: detect that a checkpoint was written by a different pipeline, and say what changed.

Spark restores the serialized graph and fails obscurely (or silently runs old closures) after a code
change. Here a checkpoint stores a fingerprint: a SHA-256 digest plus the flat description it was
computed from. The engine passes a structural description of the pipeline (stream ids, operators,
intervals, function names and code hashes); `fingerprint_callables` hashes functions' code objects for
callers without one. `compare_fingerprints` lists differences as readable lines, and
`check_fingerprint` raises with them.
"""

from __future__ import annotations

import hashlib
import json
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from checkpoint.errors import CheckpointValueError, FingerprintMismatchError


@dataclass(frozen=True)
class CodeFingerprint:
    """A digest and the flattened description (dotted path -> scalar) it was computed from."""

    digest: str
    description: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "description": dict(self.description)}

    @staticmethod
    def from_json(raw: Mapping[str, Any]) -> CodeFingerprint:
        return CodeFingerprint(str(raw["digest"]), dict(raw.get("description") or {}))


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key in sorted(value, key=str):
            _flatten(value[key], f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list | tuple):
        out[f"{prefix}.#"] = len(value)
        for i, item in enumerate(value):
            _flatten(item, f"{prefix}[{i}]", out)
    elif value is None or isinstance(value, str | int | float | bool):
        out[prefix] = value
    else:
        raise CheckpointValueError(f"fingerprint description at {prefix!r} holds a {type(value).__name__}")


def fingerprint_description(description: Mapping[str, Any]) -> CodeFingerprint:
    """Fingerprint a structural description made of dicts, lists and JSON scalars.

    Raises:
        CheckpointValueError: the description holds something other than JSON-like values.
    """
    flat: dict[str, Any] = {}
    _flatten(description, "", flat)
    canonical = json.dumps(flat, sort_keys=True, separators=(",", ":"))
    return CodeFingerprint(hashlib.sha256(canonical.encode()).hexdigest(), flat)


def code_digest(code: types.CodeType) -> str:
    """SHA-256 of a code object's bytecode, constants (recursively) and names; stable across runs."""
    h = hashlib.sha256()
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for const in code.co_consts:
        h.update(code_digest(const).encode() if isinstance(const, types.CodeType) else repr(const).encode())
    return h.hexdigest()


def fingerprint_callables(
    functions: Mapping[str, Callable[..., Any]] | Iterable[Callable[..., Any]],
) -> CodeFingerprint:
    """Fingerprint functions by their code objects, keyed by the given names or by qualname."""
    named = functions.items() if isinstance(functions, Mapping) else ((f.__qualname__, f) for f in functions)
    description: dict[str, Any] = {}
    for name, fn in named:
        code = getattr(fn, "__code__", None)
        description[f"code.{name}"] = code_digest(code) if code is not None else repr(fn)
    return fingerprint_description(description)


def compare_fingerprints(old: CodeFingerprint, new: CodeFingerprint) -> list[str]:
    """Human-readable differences between two fingerprints; empty when the digests match."""
    if old.digest == new.digest:
        return []
    diffs: list[str] = []
    for key in sorted(old.description.keys() | new.description.keys()):
        if key not in new.description:
            diffs.append(f"removed {key} (was {old.description[key]!r})")
        elif key not in old.description:
            diffs.append(f"added {key} = {new.description[key]!r}")
        elif old.description[key] != new.description[key]:
            diffs.append(f"changed {key}: {old.description[key]!r} -> {new.description[key]!r}")
    return diffs or [f"code digest changed: {old.digest[:12]} -> {new.digest[:12]}"]


def check_fingerprint(old: CodeFingerprint, new: CodeFingerprint, where: str = "checkpoint") -> None:
    """Raise `FingerprintMismatchError` naming what changed if the fingerprints differ."""
    diffs = compare_fingerprints(old, new)
    if diffs:
        shown = "; ".join(diffs[:20]) + (f"; ... {len(diffs) - 20} more" if len(diffs) > 20 else "")
        raise FingerprintMismatchError(
            f"{where} was written by a different pipeline: {shown}. Restore with the original code, or "
            "start from a new checkpoint directory."
        )

"""Plain-Python reference semantics of DStream operations, evaluated batch by batch.

Batches are lists; batch i (0-based) has time (i + 1) * batch_ms with zeroTime 0. Windows emit at
times T with T % slide == 0 and cover the batches in (T - window, T]. Independent of the engine.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any


def reduce_by_key(pairs: list[tuple[Any, Any]], func: Callable[[Any, Any], Any]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for k, v in pairs:
        out[k] = func(out[k], v) if k in out else v
    return out


def group_by_key(pairs: list[tuple[Any, Any]]) -> dict[Any, list[Any]]:
    out: dict[Any, list[Any]] = defaultdict(list)
    for k, v in pairs:
        out[k].append(v)
    return dict(out)


def window_times(n_times: int, batch_ms: int, slide_ms: int) -> list[int]:
    """Emission times of a window with `slide_ms` over `n_times` batch ticks."""
    return [t for t in range(batch_ms, (n_times + 1) * batch_ms, batch_ms) if t % slide_ms == 0]


def window_contents(batches: list[list[Any]], t: int, window_ms: int, batch_ms: int) -> list[Any]:
    """Elements of the batches with time in (t - window, t]."""
    out: list[Any] = []
    for i, batch in enumerate(batches):
        bt = (i + 1) * batch_ms
        if t - window_ms < bt <= t:
            out.extend(batch)
    return out


def update_state(
    batches: list[list[tuple[Any, Any]]],
    update: Callable[[list[Any], Any], Any],
    initial: dict[Any, Any] | None,
) -> list[dict[Any, Any]]:
    """updateStateByKey: the state after each batch (PySpark: keys of state and of the batch)."""
    state: dict[Any, Any] | None = dict(initial) if initial is not None else None
    out = []
    for batch in batches:
        grouped = group_by_key(batch)
        keys = set(grouped) | (set(state) if state is not None else set())
        new_state = {}
        for k in keys:
            last = state.get(k) if state is not None else None
            value = update(grouped.get(k, []), last)
            if value is not None:
                new_state[k] = value
        state = new_state
        out.append(dict(state))
    return out

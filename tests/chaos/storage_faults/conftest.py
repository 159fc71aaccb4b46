"""Fixtures: a FaultyStorage registered under a test protocol, and a stand-in for the process's death."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

from chaos.storage_faults import FaultyStorage, make_plan
from wal.storage import LocalStorage, Storage, register_storage, unregister_storage

PROTOCOL = "faultytest"

Install = Callable[..., FaultyStorage]


class Died(BaseException):
    """Raised by the injected `kill`: the process is dead from here on (nothing may clean up)."""


def die() -> None:
    raise Died


@contextmanager
def installed(
    rules: Sequence[Mapping[str, Any]], seed: int = 0, inner: Storage | None = None, **kwargs: Any
) -> Iterator[FaultyStorage]:
    """A FaultyStorage serving ``faultytest://`` URLs for the block (for Hypothesis tests)."""
    kwargs.setdefault("kill", die)
    storage = FaultyStorage(inner or LocalStorage(), make_plan(seed, rules), **kwargs)
    register_storage(PROTOCOL, lambda protocol, options: storage)
    try:
        yield storage
    finally:
        unregister_storage(PROTOCOL)


@pytest.fixture
def install() -> Iterator[Install]:
    """`install(rules, seed=0, inner=LocalStorage(), **kwargs)` serves ``faultytest://`` URLs."""

    def install_(
        rules: Sequence[Mapping[str, Any]], seed: int = 0, inner: Storage | None = None, **kwargs: Any
    ) -> FaultyStorage:
        kwargs.setdefault("kill", die)
        storage = FaultyStorage(inner or LocalStorage(), make_plan(seed, rules), **kwargs)
        register_storage(PROTOCOL, lambda protocol, options: storage)
        return storage

    yield install_
    unregister_storage(PROTOCOL)

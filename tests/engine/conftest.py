"""Fixtures for the engine tests: a Context per test, inline (deterministic) or on two threads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dstream import Context


@pytest.fixture(params=["local-inline", "local[2]"])
def sc(request: pytest.FixtureRequest) -> Iterator[Context]:
    """A Context on each test master; stopped afterwards so the next test may create one."""
    ctx = Context(request.param, appName="engine-test")
    yield ctx
    ctx.stop()


@pytest.fixture
def sc_inline() -> Iterator[Context]:
    ctx = Context("local-inline", appName="engine-test")
    yield ctx
    ctx.stop()

"""Fixtures for the engine tests: a Context per test, inline (deterministic), on two threads, or on Dask.

The Dask Contexts join the session's cluster of two worker processes (tests/support/dask_cluster.py);
the ``dask`` mark lets tests/conftest.py keep a representative subset of them in the default run.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dstream import Context
from tests.support.dask_cluster import dask_conf


@pytest.fixture(params=["local-inline", "local[2]", pytest.param("dask", marks=pytest.mark.dask)])
def sc(request: pytest.FixtureRequest) -> Iterator[Context]:
    """A Context on each test master; stopped afterwards so the next test may create one."""
    if request.param == "dask":
        ctx = Context(request.getfixturevalue("dask_master"), "engine-test", dask_conf())
    else:
        ctx = Context(request.param, appName="engine-test")
    yield ctx
    ctx.stop()


@pytest.fixture
def sc_inline() -> Iterator[Context]:
    ctx = Context("local-inline", appName="engine-test")
    yield ctx
    ctx.stop()

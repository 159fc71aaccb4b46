"""Recovery tests share one rule: no Context or StreamingContext outlives its test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.recovery.support import LINEAGE, SINK, stop_all


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    SINK.clear()
    LINEAGE.clear()
    yield from stop_all()

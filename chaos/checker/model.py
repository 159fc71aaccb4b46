"""PLACEHOLDER until branch chaos-checker lands (H5 owns this file): the contract's committed-output types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BatchOutput:
    consumed: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class CommittedOutput:
    batches: Mapping[int, BatchOutput]
    uncommitted_visible: tuple[str, ...] = ()
    quarantined: tuple[str, ...] = ()

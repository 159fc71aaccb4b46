"""What the scheduler did about a lost block: a value the rdd layer reports through a callback.

When a task finds a referenced block gone, the DAG scheduler runs what produced it again from lineage
(a shuffle map task, a persisted partition's computation); a block RDD task whose received block is
gone reads the block's WAL copy instead. Either way the engine says so: the DAG scheduler calls its
recovery listeners with a `BlockRecovery`, and the streaming layer (above this one) turns that into
the listener bus's `StreamingListenerBlockRecovered` event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

RecoveredBy = Literal["lineage", "wal"]


@dataclass(frozen=True)
class BlockRecovery:
    """A lost block and how it was recovered.

    Attributes:
        block: the block's name (e.g. "shuffle_3_1_0", "rdd_12_0", "input-0-1700000000000-3").
        how: "lineage" (what produced it runs again) or "wal" (read from the receiver WAL).
        detail: why it was found lost, for people.
    """

    block: str
    how: RecoveredBy
    detail: str = ""


RecoveryListener = Callable[[BlockRecovery], None]

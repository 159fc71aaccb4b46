"""Checkpoint parts written straight from a persisted RDD's cached blocks, off the task slots.

The generic path (`RDD._write_checkpoint`) runs a job whose tasks pickle and publish each part. On
the local backend those tasks take the same `local[N]` threads as the next batch's tasks, so on a
slow store (an object-store PUT takes tens of milliseconds) a background write holds up batches.
A stateful stream's RDD is persisted, and once its batch has completed every partition is a block
in the backend's block manager, whose location the driver knows: the checkpoint writer reads them
through the block manager and can pickle and publish those itself, with the
uploads overlapped on a small pool of its own (publishing waits on the network or fsync with the
GIL released). The part bytes are those the job writes (pickle protocol 5 of the partition's
records), so readers cannot tell the two paths apart. When a block is missing (unpersisted,
never computed) `cached_partitions` says so and the caller falls back to the job, which computes
the partition from lineage.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Executor, wait
from typing import Any

from checkpoint import rdd_data
from dstream.pickling import dumps_records  # the data serialization dstream.rdd.checkpointing reads


def cached_partitions(rdd: Any) -> list[list[Any]] | None:
    """Every partition of `rdd` from the block store, or None when any one is not cached."""
    blocks = rdd.context._block_locations
    parts = []
    for split in range(rdd.getNumPartitions()):
        block = blocks.read(rdd.id(), split)  # through the block manager (fetched from its holder)
        if block is None:
            return None
        parts.append(block)
    return parts


def write_parts(
    dir_url: str, partitions: list[list[Any]], storage_options: Mapping[str, Any], io: Executor
) -> None:
    """Publish every partition as a part (uploads overlapped on `io`), then commit the directory.

    Raises:
        Exception: the first failed part or the commit's error; nothing is committed then.
    """
    options = dict(storage_options)
    futures = [io.submit(_write_one, dir_url, split, part, options) for split, part in enumerate(partitions)]
    wait(futures)  # every upload has ended before this commits or raises
    for future in futures:
        future.result()
    rdd_data.commit(dir_url, len(partitions), storage_options=options)


def _write_one(dir_url: str, split: int, records: list[Any], options: dict[str, Any]) -> None:
    # Pickled on the upload thread, so at most `io`'s worker count of serialized parts exist at once.
    payload = dumps_records(records)
    rdd_data.write_part(dir_url, split, payload, storage_options=options)

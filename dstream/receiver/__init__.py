"""Reliable data receiving: receivers, block generation, block storage, the driver's block tracker.

Layout (docs/receivers.md): a `Receiver` runs under a `ReceiverSupervisor`, which cuts its records into
blocks (`BlockGenerator`), stores each block (`block_store`, optionally write-ahead logged first) and reports
it to the driver's `ReceivedBlockTracker`. The `ReceiverTracker` starts, restarts and stops receivers. Block
RDDs read blocks back from the block store or, when the in-memory copy is gone, from the receiver WAL.
"""

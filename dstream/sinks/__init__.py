"""Exactly-once output: transactional sinks committed once per (output id, batch time).

See docs/exactly-once.md for the protocol and the guarantees. Attach a sink with
`stream.write_to(sink)`.
"""

from dstream.sinks.base import CommitOutcome, StagedPart, Transaction, TransactionalSink
from dstream.sinks.file_sinks import AtLeastOnceFileSink, TransactionalFileSink
from dstream.sinks.runner import write_batch
from dstream.sinks.sqlite import SQLiteKeyValueSink

__all__ = [
    "AtLeastOnceFileSink",
    "CommitOutcome",
    "SQLiteKeyValueSink",
    "StagedPart",
    "Transaction",
    "TransactionalFileSink",
    "TransactionalSink",
    "write_batch",
]

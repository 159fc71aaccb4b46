"""Metadata checkpoints, RDD data checkpoints, atomic publish, driver leases, sink commits, retention.

Stores bytes and plain dataclasses and reports completion through callbacks it is given; it never
imports the engine. Every function takes a URL plus `storage_options`, resolved by `wal.storage`'s
registry. The format and protocol
spec is docs/checkpoint-format.md; each module's docstring holds its own byte layout.

Modules: `publish` (atomic create-once publish), `layout` (paths), `rdd_data` (RDD data checkpoints),
`envelope` (signed, checksummed container), `metadata` (MetadataCheckpoint, reader),
`metadata_writer` (background writer), `retention` (pure deletion rules), `fingerprint` (pipeline
fingerprints), `lease` (driver fencing), `commit_log` and `sink_staging` (exactly-once sinks),
`inspection` (read-only reports). Every byte goes through `wal.storage` (the one storage seam);
named crash points live in `wal.crashpoints`.
"""

from checkpoint.commit_log import CommitLog, CommitRecord
from checkpoint.envelope import SigningKey, signing_key_from_env
from checkpoint.errors import (
    AlreadyCommittedError,
    AlreadyPublishedError,
    CheckpointError,
    CheckpointNotCommittedError,
    CheckpointQueueFullError,
    CheckpointSignatureError,
    CheckpointValueError,
    CorruptCheckpointError,
    DriverLeaseError,
    FingerprintMismatchError,
    NoValidCheckpointError,
    PublishError,
    UnsupportedStorageError,
)
from checkpoint.fingerprint import (
    CodeFingerprint,
    check_fingerprint,
    compare_fingerprints,
    fingerprint_callables,
    fingerprint_description,
)
from checkpoint.lease import DriverLease, acquire_driver_lease
from checkpoint.metadata import (
    DataCheckpointRef,
    MetadataCheckpoint,
    SkippedCheckpoint,
    list_checkpoints,
    read_checkpoint,
    read_latest,
)
from checkpoint.metadata_writer import MetadataCheckpointWriter, WrittenInfo
from checkpoint.publish import publish
from checkpoint.sink_staging import StagedBatch, TransactionalFileOutput
from wal.crashpoints import crash_point

__all__ = [
    "AlreadyCommittedError",
    "AlreadyPublishedError",
    "CheckpointError",
    "CheckpointNotCommittedError",
    "CheckpointQueueFullError",
    "CheckpointSignatureError",
    "CheckpointValueError",
    "CodeFingerprint",
    "CommitLog",
    "CommitRecord",
    "CorruptCheckpointError",
    "DataCheckpointRef",
    "DriverLease",
    "DriverLeaseError",
    "FingerprintMismatchError",
    "MetadataCheckpoint",
    "MetadataCheckpointWriter",
    "NoValidCheckpointError",
    "PublishError",
    "SigningKey",
    "SkippedCheckpoint",
    "StagedBatch",
    "TransactionalFileOutput",
    "UnsupportedStorageError",
    "WrittenInfo",
    "acquire_driver_lease",
    "check_fingerprint",
    "compare_fingerprints",
    "crash_point",
    "fingerprint_callables",
    "fingerprint_description",
    "list_checkpoints",
    "publish",
    "read_checkpoint",
    "read_latest",
    "signing_key_from_env",
]

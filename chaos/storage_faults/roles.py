"""What a storage path is for (its role): the WAL, the driver lease, a checkpoint, a sink, or other.

A fault plan aims at roles rather than at absolute paths, so one plan means the same thing in every
run and every temporary directory. The role is read from the path's names, which the layers below
fix (`checkpoint.layout`, `checkpoint.sink_staging`, `wal.segments`, the file sinks' layout):

* ``lease``: ``metadata/driver.lock``, ``metadata/driver-epoch-<n>``, ``metadata/driver-heartbeat-<n>``;
* ``wal``: anything under ``receivedBlockMetadata/`` or ``receivedData/``, and WAL segments
  (``log-<seq>-<start>-<end>``, a file or an object store's prefix) wherever a log lives;
* ``sink``: a sink's commit log, staging and manifests (``commits/``, ``_sink/``, ``_staging/``,
  ``_manifest.json``);
* ``checkpoint``: metadata checkpoints, RDD data checkpoints and quarantine records (``metadata/``,
  ``rdd/``, ``quarantine/``);
* ``other``: everything else (a sink's published parts, user files).

The first rule that matches, in that order, wins: a lease file lives under ``metadata/`` but is a
lease, a commit log may live inside a checkpoint directory but belongs to a sink.
"""

from __future__ import annotations

from typing import Literal, get_args

from checkpoint.layout import (
    COMMITS_DIR,
    DRIVER_LOCK_FILE,
    METADATA_DIR,
    QUARANTINE_DIR,
    RDD_DIR,
    RECEIVED_BLOCK_METADATA_DIR,
    RECEIVED_DATA_DIR,
)
from checkpoint.sink_staging import STAGING_DIR
from dstream.sinks.file_sinks import MANIFEST, OWN_COMMIT_DIR
from wal.segments import parse_segment

Role = Literal["wal", "lease", "checkpoint", "sink", "other"]
ROLES: tuple[Role, ...] = get_args(Role)

_LEASE_PREFIXES = ("driver-epoch-", "driver-heartbeat-")
_WAL_DIRS = frozenset({RECEIVED_BLOCK_METADATA_DIR, RECEIVED_DATA_DIR})
_SINK_DIRS = frozenset({COMMITS_DIR, OWN_COMMIT_DIR, STAGING_DIR})
_CHECKPOINT_DIRS = frozenset({METADATA_DIR, RDD_DIR, QUARANTINE_DIR})


def role_of(path: str) -> Role:
    """The role of the storage path `path` (see the module docstring)."""
    names = [n for n in path.replace("\\", "/").split("/") if n]
    base = names[-1] if names else ""
    if base == DRIVER_LOCK_FILE or base.startswith(_LEASE_PREFIXES):
        return "lease"
    if _WAL_DIRS.intersection(names) or any(parse_segment(n) is not None for n in names):
        return "wal"
    if _SINK_DIRS.intersection(names) or base == MANIFEST:
        return "sink"
    if _CHECKPOINT_DIRS.intersection(names):
        return "checkpoint"
    return "other"

"""Named crash points: places where a test or a chaos run can make the process die by SIGKILL.

`crash_point(name)` does nothing unless the environment variable `DSTREAM_CRASH_POINT` names it:
`name` kills at the first hit, `name@N` at the N-th hit in this process. The process kills itself with
SIGKILL, so no `finally`, atexit or buffered write runs: exactly what a power cut or OOM kill leaves.

The variable is read at each hit (not at import) so a test can set it in a child's environment; a
hot path (the WAL's group commit) instead asks `is_armed` once per resource it opens.

They live in the lowest layer so that every layer can name its own: the WAL's (segment creation,
the gap between an append and its fsync), checkpoint publishing, RDD checkpoints, sinks, the lease.
`CRASH_POINTS` lists every name.
"""

from __future__ import annotations

import os
import signal
import threading

from wal.errors import WALValueError

ENV_VAR = "DSTREAM_CRASH_POINT"

WAL_AFTER_SEGMENT_CREATE = "wal.after_segment_create"
WAL_AFTER_APPEND_BEFORE_FSYNC = "wal.after_append_before_fsync"

RDD_AFTER_PARTS_BEFORE_COMMIT = "rdd.after_parts_before_commit"
RDD_AFTER_PART_WRITE = "rdd.after_part_write"
METADATA_AFTER_WRITE_BEFORE_PUBLISH = "metadata.after_write_before_publish"
METADATA_AFTER_PUBLISH_BEFORE_CALLBACK = "metadata.after_publish_before_callback"
METADATA_AFTER_PUBLISH_BEFORE_RETENTION = "metadata.after_publish_before_retention"
SINK_AFTER_STAGE_BEFORE_COMMIT = "sink.after_stage_before_commit"
SINK_AFTER_COMMIT_BEFORE_PUBLISH = "sink.after_commit_before_publish"
SINK_AFTER_PUBLISH_BEFORE_CLEANUP = "sink.after_publish_before_cleanup"
LEASE_AFTER_EPOCH_BEFORE_HEARTBEAT = "lease.after_epoch_before_heartbeat"
OUTPUT_AFTER_PARTS_BEFORE_SUCCESS = "output.after_parts_before_success"
QUARANTINE_AFTER_WRITE = "quarantine.after_write"

CRASH_POINTS: frozenset[str] = frozenset(
    {
        WAL_AFTER_SEGMENT_CREATE,
        WAL_AFTER_APPEND_BEFORE_FSYNC,
        RDD_AFTER_PART_WRITE,
        RDD_AFTER_PARTS_BEFORE_COMMIT,
        METADATA_AFTER_WRITE_BEFORE_PUBLISH,
        METADATA_AFTER_PUBLISH_BEFORE_CALLBACK,
        METADATA_AFTER_PUBLISH_BEFORE_RETENTION,
        SINK_AFTER_STAGE_BEFORE_COMMIT,
        SINK_AFTER_COMMIT_BEFORE_PUBLISH,
        SINK_AFTER_PUBLISH_BEFORE_CLEANUP,
        LEASE_AFTER_EPOCH_BEFORE_HEARTBEAT,
        OUTPUT_AFTER_PARTS_BEFORE_SUCCESS,
        QUARANTINE_AFTER_WRITE,
    }
)
"""Every named crash point."""

_hits: dict[str, int] = {}
_hits_lock = threading.Lock()


def parse_spec(spec: str) -> tuple[str, int]:
    """Split `name` or `name@N` into (name, N); N defaults to 1.

    Raises:
        WALValueError: N is not a positive integer.
    """
    name, sep, count = spec.partition("@")
    if not sep:
        return name, 1
    if not count.isdigit() or int(count) < 1:
        raise WALValueError(f"{ENV_VAR}={spec!r}: expected 'name' or 'name@N' with N >= 1")
    return name, int(count)


def is_armed(name: str) -> bool:
    """Whether `DSTREAM_CRASH_POINT` names `name` now (hot paths check once, then call `crash_point`)."""
    return parse_spec(os.environ.get(ENV_VAR) or "")[0] == name


def crash_point(name: str) -> None:
    """SIGKILL this process if `DSTREAM_CRASH_POINT` selects this hit of `name`; otherwise return."""
    spec = os.environ.get(ENV_VAR)
    if not spec:
        return
    target, nth = parse_spec(spec)
    if target != name:
        return
    with _hits_lock:
        _hits[name] = _hits.get(name, 0) + 1
        hit = _hits[name]
    if hit == nth:
        os.kill(os.getpid(), signal.SIGKILL)

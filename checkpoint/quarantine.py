"""The quarantine: a dead-letter area for the input of batches that failed every attempt.

A batch that fails deterministically would stay pending and pin WAL cleanup forever. With the
`quarantine` failed-batch policy (dstream.streaming.failed_batch_policy) the engine copies the batch's
input here, records the batch as failed, and moves on. The records are kept until the user drops
them (`dstream checkpoint quarantine drop`), so nothing is silently lost.

Layout: `<dir>/quarantine/batch-<batch_ms:020d>.json` (zero-padded so a listing sorts by time), one
object per batch, published atomically and create-once: a driver that crashed after writing it and
re-runs the batch finds it and keeps it (a batch is quarantined once, never twice).

Format, version 1: one UTF-8 JSON object::

    {"format": "dstream-quarantine", "version": 1, "batch_ms": <int>, "attempts": <int>,
     "error": "<traceback text of the last failure>",
     "streams": {"<input stream id>": {"count": <int>, "records": [<record>, ...]}}}

Records are JSON, never pickles, so reading a quarantine runs no code. A record is stored as itself
when it is a str, int, finite float, bool or None; otherwise it is tagged: `{"$float": "nan" | "inf" |
"-inf"}` (JSON has no such numbers), `{"$tuple": [...]}`, `{"$list": [...]}`, `{"$dict": [[key, value],
...]}`, `{"$bytes": "<base64>"}`, and anything else as `{"$repr": "<repr(record)>"}` (reported and
counted, but not restorable to the original object).
`count` is the number of records of the stream in the batch; it equals `len(records)`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from checkpoint.errors import AlreadyPublishedError, CheckpointValueError, CorruptCheckpointError
from checkpoint.layout import check_ms, quarantine_dir, quarantine_record_name
from checkpoint.location import join, resolve
from checkpoint.publish import Hook, publisher_for

FORMAT = "dstream-quarantine"
FORMAT_VERSION = 1
_RECORD_NAME = re.compile(r"batch-(\d{20})\.json")


@dataclass(frozen=True)
class QuarantinedBatch:
    """One quarantined batch: its time, the error that sank it, and its input per stream id."""

    batch_ms: int
    error: str
    attempts: int
    records: Mapping[str, Sequence[Any]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Records per input stream id."""
        return {sid: len(recs) for sid, recs in self.records.items()}

    def error_first_line(self) -> str:
        """The last line of a traceback is the exception; the first non-empty line otherwise."""
        lines = [line for line in self.error.strip().splitlines() if line.strip()]
        if not lines:
            return ""
        return lines[-1] if lines[0].startswith("Traceback") else lines[0]


class Quarantine:
    """The quarantine under `<dir_url>/quarantine/`.

    Args:
        dir_url: the checkpoint directory.
        storage_options: options for the storage.
    """

    def __init__(self, dir_url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.dir_url = dir_url
        self.storage_options = dict(storage_options or {})
        self._storage, self._dir_path = resolve(quarantine_dir(dir_url), self.storage_options)
        self._publisher = publisher_for(self._storage)

    def _path(self, batch_ms: int) -> str:
        return join(self._dir_path, quarantine_record_name(batch_ms))

    def location(self, batch_ms: int) -> str:
        """The URL of the quarantine file of `batch_ms`."""
        return join(quarantine_dir(self.dir_url), quarantine_record_name(batch_ms))

    def put(self, batch: QuarantinedBatch, before_publish: Hook = None) -> bool:
        """Publish `batch` create-once; False if the batch was already quarantined (kept as it was).

        Raises:
            CheckpointValueError: a bad batch time or stream id.
            PublishError: the storage write failed (nothing is quarantined).
        """
        path = self._path(batch.batch_ms)
        try:
            self._publisher.publish(path, encode(batch), before_publish=before_publish)
        except AlreadyPublishedError:
            return False
        return True

    def get(self, batch_ms: int) -> QuarantinedBatch | None:
        """The quarantined batch at `batch_ms`, or None.

        Raises:
            CorruptCheckpointError: the object is not a quarantine record of this format.
        """
        path = self._path(check_ms(batch_ms, "batch_ms"))
        try:
            raw = self._publisher.read(path)
        except FileNotFoundError:
            return None
        return decode(raw, path)

    def batch_times(self) -> list[int]:
        """Quarantined batch times, ascending."""
        names = self._storage.list_names(self._dir_path)
        return sorted(int(m.group(1)) for n in names if (m := _RECORD_NAME.fullmatch(n)))

    def drop(self, batch_ms: int) -> bool:
        """Delete the quarantined batch at `batch_ms` for good; False if there was none."""
        path = self._path(check_ms(batch_ms, "batch_ms"))
        if not self._publisher.exists(path):
            return False
        with contextlib.suppress(FileNotFoundError):
            self._storage.delete(path)
        return True


def encode(batch: QuarantinedBatch) -> bytes:
    """The file's bytes (see the module docstring)."""
    body = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "batch_ms": check_ms(batch.batch_ms, "batch_ms"),
        "attempts": batch.attempts,
        "error": batch.error,
        "streams": {
            str(sid): {"count": len(recs), "records": [encode_record(r) for r in recs]}
            for sid, recs in sorted(batch.records.items())
        },
    }
    return json.dumps(body, sort_keys=True, allow_nan=False).encode()


def decode(raw: bytes, where: str) -> QuarantinedBatch:
    """Parse a quarantine file; raises CorruptCheckpointError naming `where` when it is not one."""
    try:
        body = json.loads(raw)
        if body["format"] != FORMAT or body["version"] != FORMAT_VERSION:
            raise ValueError(f"format {body['format']!r} v{body['version']!r}, expected {FORMAT!r} v1")
        records: dict[str, list[Any]] = {}
        for sid, stream in body["streams"].items():
            records[str(sid)] = [decode_record(r) for r in stream["records"]]
            if int(stream["count"]) != len(records[str(sid)]):
                raise ValueError(
                    f"stream {sid}: count {stream['count']} but {len(records[str(sid)])} records"
                )
        return QuarantinedBatch(int(body["batch_ms"]), str(body["error"]), int(body["attempts"]), records)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CorruptCheckpointError(f"{where}: not a quarantine record: {exc!r}") from exc


def encode_record(record: Any) -> Any:
    """One record as JSON (see the module docstring for the tags)."""
    if record is None or isinstance(record, (str, bool, int)):
        return record
    if isinstance(record, float):
        return record if math.isfinite(record) else {"$float": repr(record)}
    if isinstance(record, tuple):
        return {"$tuple": [encode_record(r) for r in record]}
    if isinstance(record, list):
        return {"$list": [encode_record(r) for r in record]}
    if isinstance(record, dict):
        return {"$dict": [[encode_record(k), encode_record(v)] for k, v in record.items()]}
    if isinstance(record, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(bytes(record)).decode("ascii")}
    return {"$repr": repr(record)}


def decode_record(value: Any) -> Any:
    """The record `encode_record` stored (a `$repr` record comes back as that tagged dict)."""
    if not isinstance(value, dict):
        if isinstance(value, list):
            raise CheckpointValueError(f"untagged list in a quarantine record: {value!r:.80}")
        return value
    if "$tuple" in value:
        return tuple(decode_record(v) for v in value["$tuple"])
    if "$list" in value:
        return [decode_record(v) for v in value["$list"]]
    if "$dict" in value:
        return {decode_record(k): decode_record(v) for k, v in value["$dict"]}
    if "$bytes" in value:
        return base64.b64decode(value["$bytes"])
    if "$float" in value:
        text = value["$float"]
        if text not in ("nan", "inf", "-inf"):
            raise CheckpointValueError(f"$float {text!r} in a quarantine record; expected nan, inf or -inf")
        return float(text)
    if "$repr" in value:
        return value
    raise CheckpointValueError(f"unknown tag in a quarantine record: {sorted(value)!r}")

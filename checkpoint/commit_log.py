"""The sink commit log: one create-once record per (output id, batch time).

Outputs are at-least-once by nature (the last batch always re-runs after recovery), so exactly-once is
the sink's job: before its effects become visible, a transactional sink records "batch T of output O is
committed" here, and a re-run batch that finds the record skips its output.

Layout: `<dir>/commits/<output_id>/<batch_ms:020d>` (zero-padded so listings sort by time). Each record
is published atomically and create-once, and holds the JSON object::

    {"format": "dstream-commit", "version": 1, "output_id": ..., "batch_ms": ...,
     "nonce": <random hex>, "info": {...caller's JSON...}}

Decision for a second `record` of the same (output, batch): it raises `AlreadyCommittedError`, whose
`existing` attribute holds the record that won, so the caller can tell a duplicate from its own retry
(the nonce makes an identical record mean "my own earlier attempt landed", which `record` treats as
success). Create-once also makes the record the fence between two drivers: exactly one commits a batch.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from checkpoint.errors import (
    AlreadyCommittedError,
    AlreadyPublishedError,
    CheckpointValueError,
    CorruptCheckpointError,
)
from checkpoint.layout import check_id, check_ms, commit_record_name, commits_dir
from checkpoint.location import join, resolve
from checkpoint.publish import publisher_for

FORMAT = "dstream-commit"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class CommitRecord:
    """One committed (output, batch) and the caller's info."""

    output_id: str
    batch_ms: int
    info: Mapping[str, Any] = field(default_factory=dict)
    nonce: str = ""


class CommitLog:
    """The commit log under `<dir_url>/commits/`.

    Args:
        dir_url: the checkpoint directory (or any directory dedicated to commit records).
        storage_options: fsspec options.
    """

    def __init__(self, dir_url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.dir_url = dir_url
        self.storage_options = dict(storage_options or {})
        self._storage, _ = resolve(dir_url, self.storage_options)
        self._publisher = publisher_for(self._storage)

    def _path(self, output_id: str, batch_ms: int) -> str:
        url = join(commits_dir(self.dir_url, output_id), commit_record_name(batch_ms))
        return str(resolve(url, self.storage_options)[1])

    def is_committed(self, output_id: str, batch_ms: int) -> bool:
        """Whether batch `batch_ms` of `output_id` has a commit record."""
        return self._publisher.exists(self._path(output_id, batch_ms))

    def get(self, output_id: str, batch_ms: int) -> CommitRecord | None:
        """The record of (output, batch), or None.

        Raises:
            CorruptCheckpointError: the record is not a valid commit record.
        """
        path = self._path(output_id, batch_ms)
        try:
            raw = self._publisher.read(path)
        except FileNotFoundError:
            return None
        return _decode(raw, path)

    def record(self, output_id: str, batch_ms: int, info: Mapping[str, Any]) -> CommitRecord:
        """Record the commit of (output, batch) create-once; returns the record written.

        Raises:
            AlreadyCommittedError: the batch was already committed (`.existing` holds that record).
            CheckpointValueError: bad ids, or `info` is not plain JSON.
            PublishError: the storage write failed (nothing is recorded).
        """
        rec = CommitRecord(
            check_id(output_id, "output id"), check_ms(batch_ms, "batch_ms"), dict(info), uuid.uuid4().hex
        )
        path = self._path(output_id, batch_ms)
        try:
            self._publisher.publish(path, _encode(rec))
        except AlreadyPublishedError as exc:
            if exc.identical:
                return rec
            existing = self.get(output_id, batch_ms)
            raise AlreadyCommittedError(
                f"batch {batch_ms} of output {output_id!r} is already committed", existing
            ) from exc
        return rec

    def committed(self, output_id: str) -> list[int]:
        """Batch times committed for `output_id`, ascending."""
        _, path = resolve(commits_dir(self.dir_url, output_id), self.storage_options)
        names = self._storage.list_names(path)
        return sorted(int(n) for n in names if len(n) == 20 and n.isdigit())

    def clean(self, output_id: str, before_ms: int) -> list[int]:
        """Delete records of batches < `before_ms`, always keeping the newest; returns what was deleted.

        Only call it with a threshold below every batch that could still be re-run (the oldest batch
        the newest valid metadata checkpoint may replay).
        """
        check_ms(before_ms, "before_ms")
        times = self.committed(output_id)
        doomed = [t for t in times[:-1] if t < before_ms]
        for t in doomed:
            with contextlib.suppress(FileNotFoundError):
                self._storage.delete(self._path(output_id, t))
        return doomed


def _encode(rec: CommitRecord) -> bytes:
    body = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "output_id": rec.output_id,
        "batch_ms": rec.batch_ms,
        "nonce": rec.nonce,
        "info": dict(rec.info),
    }
    try:
        return json.dumps(body, sort_keys=True, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise CheckpointValueError(f"commit info for batch {rec.batch_ms} is not plain JSON: {exc}") from exc


def _decode(raw: bytes, where: str) -> CommitRecord:
    try:
        body = json.loads(raw)
        if body["format"] != FORMAT or body["version"] != FORMAT_VERSION:
            raise ValueError(f"format {body['format']!r} v{body['version']!r}")
        return CommitRecord(
            str(body["output_id"]), int(body["batch_ms"]), dict(body["info"]), str(body["nonce"])
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise CorruptCheckpointError(f"{where}: not a commit record: {exc!r}") from exc

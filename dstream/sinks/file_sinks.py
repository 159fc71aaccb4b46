"""File sinks on any registered storage: the transactional one, and an at-least-once canary for chaos.

`TransactionalFileSink` runs the stage -> commit-log record -> publish protocol of
`checkpoint.sink_staging` (read that module for the crash analysis). Layout under the sink's URL::

    <url>/<batch_ms>/part-NNNNN.<jsonl|parquet>      a committed batch's parts (published after commit)
    <url>/<batch_ms>/_manifest.json                  {"format", "parts": [[name, records_n], ...]}
    <url>/_staging/<output_id>/<batch_ms>/<attempt>/ an attempt's staged files (private)
    <url>/_sink/commits/<output_id>/<batch_ms:020d>  the commit log, when it lives with the data

A batch is committed when its record exists in the commit log. The commit log lives with the data
(`<url>/_sink/commits/`, as Structured Streaming keeps `_spark_metadata` beside its files), so any
reader of `url` sees the committed view without knowing the pipeline's checkpoint directory;
`commit_dir` moves it elsewhere, and a reader must then pass the same `commit_dir`.

The committed view (`read_committed`) lists only batches in the commit log and reads exactly the
files their records name, so staged, aborted or half-published data is never shown. Empty partitions
write no part file; the manifest makes every batch, even an empty one, a non-empty commit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from checkpoint.commit_log import CommitLog
from checkpoint.errors import AlreadyPublishedError, CheckpointValueError
from checkpoint.layout import check_id
from checkpoint.location import join, resolve
from checkpoint.publish import publisher_for
from checkpoint.sink_staging import TransactionalFileOutput
from dstream.errors import DStreamError, DStreamValueError
from dstream.sinks.base import CommitOutcome, StagedPart, Transaction, TransactionalSink
from dstream.sinks.records import SUFFIXES, check_format, decode, encode
from wal import crashpoints

MANIFEST = "_manifest.json"
OWN_COMMIT_DIR = "_sink"


def default_output_id(kind: str, url: str) -> str:
    """A stable id derived from the sink's URL (the same URL gives the same id in every run)."""
    return f"{kind}-{hashlib.sha256(url.encode()).hexdigest()[:16]}"


def _check_output_id(output_id: str) -> str:
    try:
        return check_id(output_id, "output_id")
    except CheckpointValueError as exc:
        raise DStreamValueError(str(exc)) from exc


def part_name(partition_index: int, fmt: str) -> str:
    return f"part-{partition_index:05d}{SUFFIXES[fmt]}"


class TransactionalFileSink(TransactionalSink):
    """Exactly-once JSON-lines or Parquet files on any fsspec store with atomic publish.

    Args:
        url: the output directory (local path, memory://, s3://).
        format: "jsonl" (any JSON-serializable records) or "parquet" (dict records).
        storage_options: fsspec options for `url`.
        output_id: the stable commit-log key; defaults to one derived from `url`.
        commit_dir: where the commit log lives (default: `<url>/_sink/commits`, with the data).
        commit_storage_options: fsspec options for `commit_dir` (default: `storage_options`).

    Raises:
        DStreamValueError: unknown format or a bad output id.
    """

    def __init__(
        self,
        url: str,
        format: str = "jsonl",
        storage_options: Mapping[str, Any] | None = None,
        *,
        output_id: str | None = None,
        commit_dir: str | None = None,
        commit_storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(url, str) or not url:
            raise DStreamValueError(f"sink url must be a non-empty string, got {url!r}")
        self.url = url.rstrip("/")
        self.format = check_format(format)
        self.storage_options = dict(storage_options or {})
        self.output_id = _check_output_id(output_id or default_output_id("file", self.url))
        self.commit_dir = commit_dir or join(self.url, OWN_COMMIT_DIR)
        self.commit_storage_options = dict(
            commit_storage_options if commit_storage_options is not None else self.storage_options
        )

    def _transient_attrs(self) -> tuple[str, ...]:
        return (*super()._transient_attrs(), "_output")

    def __repr__(self) -> str:
        return f"TransactionalFileSink({self.url!r}, format={self.format!r}, output_id={self.output_id!r})"

    # -- where things live ---------------------------------------------------------------------

    def _file_output(self) -> TransactionalFileOutput:
        output: TransactionalFileOutput | None = self.__dict__.get("_output")
        if output is None:
            log = CommitLog(self.commit_dir, self.commit_storage_options)
            output = TransactionalFileOutput(
                self.url, self.output_id, log, storage_options=self.storage_options
            )
            self._output = output
        return output

    # -- the protocol --------------------------------------------------------------------------

    def recover(self) -> None:
        self._file_output().recover()

    def is_committed(self, batch_ms: int) -> bool:
        return self._file_output().commit_log.is_committed(self.output_id, batch_ms)

    def stage(self, txn: Transaction, partition_index: int, records: Iterable[Any]) -> StagedPart:
        where = f"{self!r} batch {txn.batch_ms} partition {partition_index}"
        data, records_n = encode(self.format, records, where)
        if records_n == 0:
            return StagedPart(partition_index, None, 0)
        name = part_name(partition_index, self.format)
        self._stage_file(txn, name, data)
        return StagedPart(partition_index, name, records_n)

    def _stage_file(self, txn: Transaction, name: str, data: bytes) -> None:
        output = self._file_output()
        try:
            output.stage(output.begin(txn.batch_ms, txn.attempt), name, data)
        except AlreadyPublishedError as exc:
            # A retried task of the same attempt: fine if it recomputed the same bytes.
            if not exc.identical:
                raise DStreamError(
                    f"{self!r}: a retried task staged different bytes for {name} of batch {txn.batch_ms}; "
                    "the batch's computation is not deterministic"
                ) from exc

    def commit(self, txn: Transaction, staged: list[StagedPart]) -> CommitOutcome:
        parts = [[p.name, p.records_n] for p in staged if p.name is not None]
        missing = sorted({str(name) for name, _ in parts} - set(self._staged_names(txn)))
        if missing and not self.is_committed(txn.batch_ms):
            raise DStreamError(
                f"{self!r}: batch {txn.batch_ms} attempt {txn.attempt} lost staged files {missing} "
                "(aborted, or cleaned by another driver's recovery); not committing it"
            )
        manifest = json.dumps({"format": self.format, "parts": parts}, sort_keys=True).encode()
        self._stage_file(txn, MANIFEST, manifest)
        output = self._file_output()
        return output.commit(
            output.begin(txn.batch_ms, txn.attempt), {**self.commit_info(txn), "parts": parts}
        )

    def commit_info(self, txn: Transaction) -> dict[str, Any]:
        """Extra JSON recorded in the batch's commit record (none here; a subclass may say who committed).

        Called on the driver right before the commit record is written. "parts", "attempt" and "files"
        are the protocol's own keys: a subclass's keys of those names are replaced.
        """
        return {}

    def commit_records(self) -> dict[int, dict[str, Any]]:
        """Every committed batch's commit-record info: {batch_ms: info}, ascending."""
        log = self._file_output().commit_log
        out: dict[int, dict[str, Any]] = {}
        for batch_ms in log.committed(self.output_id):
            record = log.get(self.output_id, batch_ms)
            if record is not None:
                out[batch_ms] = dict(record.info)
        return out

    def _staged_names(self, txn: Transaction) -> list[str]:
        storage, path = resolve(
            self._file_output().begin(txn.batch_ms, txn.attempt).staging_url, self.storage_options
        )
        return storage.list_names(path)

    def abort(self, txn: Transaction) -> None:
        output = self._file_output()
        output.abort(output.begin(txn.batch_ms, txn.attempt))

    # -- the committed view --------------------------------------------------------------------

    def committed_batches(self) -> list[int]:
        """Batch times in the commit log, ascending."""
        return self._file_output().commit_log.committed(self.output_id)

    def read_committed(self) -> dict[int, list[Any]]:
        """Every committed batch's records in partition order: {batch_ms: [record, ...]}."""
        out: dict[int, list[Any]] = {}
        for batch_ms, files in sorted(self._file_output().read_committed().items()):
            parts = json.loads(files[MANIFEST])["parts"]
            out[batch_ms] = [r for name, _ in parts for r in decode(self.format, files[name])]
        return out


class AtLeastOnceFileSink(TransactionalSink):
    """A deliberately at-least-once canary: tasks write straight to the output, nothing is logged.

    Each attempt writes `<url>/<batch_ms>/part-NNNNN-<attempt>.jsonl`, visible at once; a re-run batch
    writes its records again and a crashed batch leaves what it wrote. The chaos checker must catch
    it (duplicates after a re-run, partial batches after a crash). Do not use it for real output.

    Its `commit` hits `sink.after_stage_before_commit` when the batch wrote records: a crash there
    comes after the output is visible and before the batch counts as done, so the restarted driver
    re-runs the batch and the canary writes its records a second time, a certain duplicate (a batch
    that wrote nothing has no such window and does not count as a hit).
    """

    def __init__(
        self, url: str, storage_options: Mapping[str, Any] | None = None, *, output_id: str | None = None
    ) -> None:
        if not isinstance(url, str) or not url:
            raise DStreamValueError(f"sink url must be a non-empty string, got {url!r}")
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.output_id = _check_output_id(output_id or default_output_id("canary", self.url))

    def is_committed(self, batch_ms: int) -> bool:
        return False  # no commit log: every run writes again

    def stage(self, txn: Transaction, partition_index: int, records: Iterable[Any]) -> StagedPart:
        where = f"AtLeastOnceFileSink({self.url!r}) batch {txn.batch_ms} partition {partition_index}"
        data, records_n = encode("jsonl", records, where)
        name = f"part-{partition_index:05d}-{txn.attempt}.jsonl"
        storage, path = resolve(join(self.url, str(txn.batch_ms), name), self.storage_options)
        publisher_for(storage).publish(path, data)
        return StagedPart(partition_index, name, records_n)

    def commit(self, txn: Transaction, staged: list[StagedPart]) -> CommitOutcome:
        if any(part.records_n for part in staged):
            crashpoints.crash_point(crashpoints.SINK_AFTER_STAGE_BEFORE_COMMIT)
        return "committed"

    def abort(self, txn: Transaction) -> None:
        """Nothing: what the tasks wrote stays visible (that is the point of the canary)."""

    def read_committed(self) -> dict[int, list[Any]]:
        """Everything in the output: {batch_ms: [record, ...]} including duplicates and partial batches."""
        storage, root = resolve(self.url, self.storage_options)
        out: dict[int, list[Any]] = {}
        for path in storage.find(root):
            batch = path[len(root) :].strip("/").split("/")[0]
            if batch.isdigit() and path.endswith(".jsonl"):
                out.setdefault(int(batch), []).extend(decode("jsonl", storage.read(path)))
        return out

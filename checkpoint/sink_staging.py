"""The storage protocol of transactional file sinks: stage, commit-log record, publish.

Per batch attempt, a sink writes its files into a private staging directory, then commits:

    1. stage      files under `<out>/_staging/<output_id>/<batch_ms>/<attempt>/<name>` (each atomic)
    2.            crash point `sink.after_stage_before_commit`
    3. record     the commit in the `CommitLog`: {"attempt": ..., "files": [...]} -- the commit point
    4.            crash point `sink.after_commit_before_publish`
    5. publish    each staged file to `<out>/<batch_ms>/<name>` (create-once; a redo finds identical bytes)
    6.            crash point `sink.after_publish_before_cleanup`
    7. clean      the batch's staging directory (every attempt)

Before step 3 a crash leaves only staging files, which no reader looks at and `recover` deletes.
After step 3 the batch is committed: `committed_view` shows its files (the final copy where it is
published, else the committed attempt's staged copy) and `recover` rolls the publish forward. A
re-run batch finds the record and skips (`commit` returns "already-committed" and discards its own
attempt). So the committed view never shows uncommitted data and never loses committed data.
`recover` must run before the driver re-runs batches (it deletes staging of uncommitted attempts).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from checkpoint.commit_log import CommitLog
from checkpoint.errors import (
    AlreadyCommittedError,
    AlreadyPublishedError,
    CheckpointError,
    CheckpointValueError,
)
from checkpoint.layout import check_id, check_ms
from checkpoint.location import join, resolve
from checkpoint.publish import publisher_for
from wal import crashpoints

STAGING_DIR = "_staging"


@dataclass(frozen=True)
class StagedBatch:
    """One attempt at writing one batch of one output."""

    output_id: str
    batch_ms: int
    attempt: str
    staging_url: str


@dataclass(frozen=True)
class RecoveryReport:
    rolled_forward: list[int] = field(default_factory=list)
    discarded: list[int] = field(default_factory=list)


class TransactionalFileOutput:
    """Stage-then-commit file output for one output id under `out_url`.

    Args:
        out_url: the output directory.
        output_id: the stable id of the output operation (keys the commit log and staging).
        commit_log: where commits are recorded (normally in the checkpoint directory).
        storage_options: fsspec options for `out_url`.
    """

    def __init__(
        self,
        out_url: str,
        output_id: str,
        commit_log: CommitLog,
        *,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.out_url = out_url
        self.output_id = check_id(output_id, "output id")
        self.commit_log = commit_log
        self._so = dict(storage_options or {})
        self._storage, _ = resolve(out_url, self._so)
        self._publisher = publisher_for(self._storage)

    # -- paths ---------------------------------------------------------------------------------

    def _staging_batch_url(self, batch_ms: int) -> str:
        return join(self.out_url, STAGING_DIR, self.output_id, str(check_ms(batch_ms, "batch_ms")))

    def final_url(self, batch_ms: int, name: str) -> str:
        """Where a committed batch's file is published: `<out>/<batch_ms>/<name>`."""
        return join(self.out_url, str(check_ms(batch_ms, "batch_ms")), check_id(name, "file name"))

    def _path(self, url: str) -> str:
        return str(resolve(url, self._so)[1])

    def _ls_names(self, url: str) -> list[str]:
        return sorted(n for n in self._storage.list_names(self._path(url)) if not n.startswith("."))

    # -- the protocol --------------------------------------------------------------------------

    def begin(self, batch_ms: int, attempt: str | None = None) -> StagedBatch:
        """Start an attempt at `batch_ms`; `attempt` defaults to a random id."""
        attempt_id = check_id(attempt or uuid.uuid4().hex, "attempt id")
        url = join(self._staging_batch_url(batch_ms), attempt_id)
        return StagedBatch(self.output_id, batch_ms, attempt_id, url)

    def stage(self, staged: StagedBatch, name: str, data: bytes) -> None:
        """Write one file of the attempt (atomically; names are create-once within an attempt)."""
        self._publisher.publish(self._path(join(staged.staging_url, check_id(name, "file name"))), data)

    def commit(
        self,
        staged: StagedBatch,
        info: Mapping[str, Any] | None = None,
        *,
        expected_files: Collection[str] | None = None,
    ) -> Literal["committed", "already-committed"]:
        """Commit the attempt: record it, publish its files, clean staging.

        Returns "already-committed" (and discards this attempt) when the batch was committed before,
        by an earlier run or a concurrent driver.

        Args:
            staged: the attempt.
            info: JSON recorded with the commit (the record also holds "attempt" and "files").
            expected_files: names the caller staged; if any is missing from staging (aborted, or
                cleaned by another driver's `recover`), nothing is recorded.

        Raises:
            CheckpointValueError: the attempt staged no files.
            CheckpointError: an expected file is missing from staging.
            PublishError: storage failure (the batch is committed iff the record was written;
                `recover` finishes either way).
        """
        if self.commit_log.is_committed(self.output_id, staged.batch_ms):
            self.abort(staged)
            return "already-committed"
        files = self._ls_names(staged.staging_url)
        if not files:
            raise CheckpointValueError(f"attempt {staged.attempt} of batch {staged.batch_ms} staged no files")
        missing = sorted(set(expected_files or ()) - set(files))
        if missing:
            raise CheckpointError(
                f"attempt {staged.attempt} of batch {staged.batch_ms} lost staged files {missing} "
                "(aborted, or cleaned by another driver's recovery); not committing it"
            )
        crashpoints.crash_point(crashpoints.SINK_AFTER_STAGE_BEFORE_COMMIT)
        try:
            self.commit_log.record(
                self.output_id, staged.batch_ms, {**(info or {}), "attempt": staged.attempt, "files": files}
            )
        except AlreadyCommittedError:
            self.abort(staged)
            return "already-committed"
        crashpoints.crash_point(crashpoints.SINK_AFTER_COMMIT_BEFORE_PUBLISH)
        self._publish_batch(staged.batch_ms, staged.attempt, files)
        crashpoints.crash_point(crashpoints.SINK_AFTER_PUBLISH_BEFORE_CLEANUP)
        self._delete(self._staging_batch_url(staged.batch_ms))
        return "committed"

    def abort(self, staged: StagedBatch) -> None:
        """Discard an attempt's staged files."""
        self._delete(staged.staging_url)

    def _publish_batch(self, batch_ms: int, attempt: str, files: list[str]) -> None:
        staging = join(self._staging_batch_url(batch_ms), attempt)
        for name in files:
            final = self._path(self.final_url(batch_ms, name))
            if self._publisher.exists(final):
                continue  # published by an earlier roll-forward of this same committed attempt
            data = self._publisher.read(self._path(join(staging, name)))
            with contextlib.suppress(AlreadyPublishedError):
                self._publisher.publish(final, data)

    def _has_files(self, url: str) -> bool:
        return bool(self._storage.find(self._path(url)))

    def _delete(self, url: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._storage.delete(self._path(url), recursive=True)

    # -- recovery and the committed view -------------------------------------------------------

    def recover(self) -> RecoveryReport:
        """Roll committed batches forward and discard uncommitted attempts (run before re-running batches)."""
        rolled: list[int] = []
        discarded: list[int] = []
        for batch_name in self._ls_names(join(self.out_url, STAGING_DIR, self.output_id)):
            if not batch_name.isdigit():
                continue
            batch_ms = int(batch_name)
            if not self._has_files(self._staging_batch_url(batch_ms)):
                self._delete(self._staging_batch_url(batch_ms))  # an empty dir entry left by a store
                continue
            record = self.commit_log.get(self.output_id, batch_ms)
            if record is not None:
                self._publish_batch(batch_ms, str(record.info["attempt"]), list(record.info["files"]))
                rolled.append(batch_ms)
            else:
                discarded.append(batch_ms)
            self._delete(self._staging_batch_url(batch_ms))
        return RecoveryReport(rolled, discarded)

    def committed_view(self) -> dict[int, dict[str, str]]:
        """For each committed batch, its files' URLs: {batch_ms: {name: url}}.

        A file not yet published (crash after the commit record) is shown at its staged location, so
        the view is complete and holds committed data only.
        """
        view: dict[int, dict[str, str]] = {}
        for batch_ms in self.commit_log.committed(self.output_id):
            record = self.commit_log.get(self.output_id, batch_ms)
            if record is None:
                continue
            staging = join(self._staging_batch_url(batch_ms), str(record.info["attempt"]))
            files: dict[str, str] = {}
            for name in record.info["files"]:
                final = self.final_url(batch_ms, name)
                files[name] = final if self._publisher.exists(self._path(final)) else join(staging, name)
            view[batch_ms] = files
        return view

    def read_committed(self) -> dict[int, dict[str, bytes]]:
        """The bytes of every committed file, by batch and name (safe while a writer commits)."""
        return {
            batch_ms: {name: self._read_committed_file(batch_ms, name, url) for name, url in files.items()}
            for batch_ms, files in self.committed_view().items()
        }

    def _read_committed_file(self, batch_ms: int, name: str, url: str) -> bytes:
        # A writer publishes a committed file before it deletes the staged copy, so a staged copy that
        # vanished after `committed_view` chose it has been published: look there once more.
        final = self.final_url(batch_ms, name)
        for candidate in (url, final):
            try:
                return self._publisher.read(self._path(candidate))
            except FileNotFoundError:
                continue
        raise CheckpointError(
            f"committed file {name!r} of batch {batch_ms} is neither at {url} nor at {final}"
        )

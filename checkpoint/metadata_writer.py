"""The background metadata checkpoint writer: one thread, a bounded queue, no silent drops.

The engine serializes the graph on its own thread (a consistent snapshot) and hands a
`MetadataCheckpoint` to `write`. One writer thread names, encodes and publishes checkpoints in the
order received, then applies retention and calls `on_written(batch_ms, info)`.

Unlike Spark's writer (a full queue drops the checkpoint, a failed rename is only logged, three IO
failures end in a warning), here:

- a full queue blocks `write` for up to `put_timeout_s`, then raises `CheckpointQueueFullError`;
- a failed publish is retried up to `attempts_max` times, then `on_failed(batch_ms, error)` is called;
- a name already taken by someone else means another writer is active in the directory: this writer
  is fenced, reports `DriverLeaseError` through `on_failed` and refuses further writes.

Retention runs only after a publish is durable: older metadata checkpoints beyond `keep_n` are
deleted, and so are RDD data checkpoint directories no kept checkpoint needs (see
`checkpoint.retention`); the WAL clean threshold is reported in `WrittenInfo`, for the engine to act on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from checkpoint import rdd_data
from checkpoint.errors import (
    AlreadyPublishedError,
    CheckpointError,
    CheckpointQueueFullError,
    CheckpointValueError,
    CorruptCheckpointError,
    DriverLeaseError,
)
from checkpoint.layout import (
    RDD_DIR,
    RUN_CHILD,
    CheckpointName,
    metadata_checkpoint_url,
    rdd_checkpoint_dir,
    rdd_run_dir,
)
from checkpoint.location import join, resolve
from checkpoint.metadata import (
    KeyChoice,
    MetadataCheckpoint,
    list_checkpoints,
    next_name,
    read_checkpoint,
    resolve_key,
    write_checkpoint,
)
from checkpoint.retention import CheckpointSummary, RddDirKey, plan_retention
from wal import crashpoints
from wal.transient_errors import retry_transient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WrittenInfo:
    """What one successful checkpoint write did."""

    name: CheckpointName
    url: str
    attempts: int
    deleted_metadata: list[str] = field(default_factory=list)
    deleted_rdd_dirs: list[str] = field(default_factory=list)
    wal_clean_before_ms: int | None = None


OnWritten = Callable[[int, WrittenInfo], None]
OnFailed = Callable[[int, BaseException], None]


def _check_json(ckpt: MetadataCheckpoint) -> None:
    try:
        json.dumps(ckpt.json_part(CheckpointName(0, 0)), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CheckpointValueError(
            f"checkpoint of batch {ckpt.batch_ms} has a field that is not plain JSON: {exc}"
        ) from exc


def _summary(ckpt: MetadataCheckpoint, name: CheckpointName) -> CheckpointSummary:
    refs = frozenset((r.stream_id, r.batch_ms) for r in ckpt.data_checkpoints)
    return CheckpointSummary(name, refs, ckpt.wal_needed_from_ms)


class MetadataCheckpointWriter:
    """Writes metadata checkpoints to `dir_url` on one background thread.

    Args:
        dir_url: the checkpoint directory (any fsspec URL).
        storage_options: fsspec options.
        keep_n: metadata checkpoints to keep (default 10).
        queue_size_max: checkpoints waiting to be written before `write` blocks.
        put_timeout_s: how long `write` blocks on a full queue before raising.
        attempts_max: publish attempts per checkpoint.
        retry_delay_s: wait between attempts.
        key: signing key, None for unsigned, "env" for DSTREAM_CHECKPOINT_KEY.
        on_written: called on the writer thread after publish and retention.
        on_failed: called on the writer thread when a checkpoint could not be written.
        fence: called before each publish; raising (e.g. a lost driver lease) fails the write.
        clean_rdd_data: delete RDD data checkpoint dirs that retention allows.
        live_runs: run ids whose `rdd/<run id>` directory (rdd.checkpoint() files) a running Context
            may still read; every other run directory is deleted.
    """

    def __init__(
        self,
        dir_url: str,
        *,
        storage_options: Mapping[str, Any] | None = None,
        keep_n: int = 10,
        queue_size_max: int = 100,
        put_timeout_s: float = 30.0,
        attempts_max: int = 3,
        retry_delay_s: float = 0.5,
        key: KeyChoice = "env",
        on_written: OnWritten | None = None,
        on_failed: OnFailed | None = None,
        fence: Callable[[], None] | None = None,
        clean_rdd_data: bool = True,
        live_runs: Sequence[str] = (),
    ) -> None:
        for label, value in (
            ("keep_n", keep_n),
            ("queue_size_max", queue_size_max),
            ("attempts_max", attempts_max),
        ):
            if not isinstance(value, int) or value < 1:
                raise CheckpointValueError(f"{label} must be an int >= 1, got {value!r}")
        self.dir_url = dir_url
        self._so = dict(storage_options or {})
        self._keep_n = keep_n
        self._put_timeout_s = put_timeout_s
        self._attempts_max = attempts_max
        self._retry_delay_s = retry_delay_s
        self._key = resolve_key(key)
        self._on_written = on_written
        self._on_failed = on_failed
        self._fence = fence
        self._clean_rdd_data = clean_rdd_data
        self._live_runs = tuple(live_runs)
        self._queue: queue.Queue[MetadataCheckpoint | None] = queue.Queue(maxsize=queue_size_max)
        self._stop = threading.Event()
        self._fenced: BaseException | None = None
        self._latest: CheckpointName | None = None
        self._summaries: dict[CheckpointName, CheckpointSummary] = {}
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition()

    @property
    def latest_name(self) -> CheckpointName | None:
        """The newest name written or found at start (the next write ranks above it)."""
        return self._latest

    # -- caller side ---------------------------------------------------------------------------

    def start(self) -> MetadataCheckpointWriter:
        """Find the newest existing name (so new names rank above it; the listing is retried on transient
        errors, `wal.transient_errors`) and start the thread."""
        if self._thread is not None:
            raise CheckpointError(f"writer for {self.dir_url!r} already started")
        existing = retry_transient(
            lambda: list_checkpoints(self.dir_url, storage_options=self._so),
            f"the checkpoints in {self.dir_url}",
        )
        self._latest = existing[-1] if existing else None
        self._thread = threading.Thread(target=self._run, name="dstream-checkpoint-writer", daemon=True)
        self._thread.start()
        return self

    def write(self, checkpoint: MetadataCheckpoint) -> None:
        """Queue a checkpoint; blocks up to `put_timeout_s` when the queue is full.

        Raises:
            CheckpointQueueFullError: the queue stayed full for `put_timeout_s`.
            DriverLeaseError: this writer has been fenced by another writer.
            CheckpointError: the writer is not running.
        """
        if self._fenced is not None:
            raise DriverLeaseError(f"checkpoint writer for {self.dir_url!r} is fenced: {self._fenced}")
        if self._thread is None or self._stop.is_set():
            raise CheckpointError(f"checkpoint writer for {self.dir_url!r} is not running")
        _check_json(checkpoint)  # misuse fails here, in the caller's thread, not later in the writer
        try:
            self._queue.put(checkpoint, timeout=self._put_timeout_s)
        except queue.Full as exc:
            raise CheckpointQueueFullError(
                f"checkpoint of batch {checkpoint.batch_ms} not accepted within {self._put_timeout_s}s: "
                f"{self._queue.maxsize} checkpoints already queued for {self.dir_url!r} (storage too slow?)"
            ) from exc

    def flush(self, timeout_s: float) -> None:
        """Wait until every queued checkpoint has been handled (written or reported failed).

        Raises:
            CheckpointError: still busy after `timeout_s`.
        """
        with self._idle:
            if not self._idle.wait_for(lambda: self._queue.unfinished_tasks == 0, timeout_s):
                raise CheckpointError(f"checkpoint writer for {self.dir_url!r} still busy after {timeout_s}s")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, then stop the thread (bounded by `timeout_s`)."""
        if self._thread is None or self._stop.is_set():
            return
        self._queue.put(None, timeout=timeout_s)
        self._thread.join(timeout_s)
        self._stop.set()
        if self._thread.is_alive():
            raise CheckpointError(f"checkpoint writer for {self.dir_url!r} did not stop in {timeout_s}s")

    def __enter__(self) -> MetadataCheckpointWriter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- writer thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._handle(item)
            finally:
                with self._idle:
                    self._queue.task_done()
                    self._idle.notify_all()

    def _handle(self, ckpt: MetadataCheckpoint) -> None:
        if self._fenced is not None:
            self._report_failure(ckpt.batch_ms, DriverLeaseError(f"writer is fenced: {self._fenced}"))
            return
        try:
            name, url, attempts = self._publish_with_retries(ckpt, next_name(self._latest, ckpt.batch_ms))
        except BaseException as exc:
            self._report_failure(ckpt.batch_ms, exc)
            return
        self._latest = name
        self._summaries[name] = _summary(ckpt, name)
        crashpoints.crash_point(crashpoints.METADATA_AFTER_PUBLISH_BEFORE_RETENTION)
        info = self._apply_retention(name, url, attempts)
        crashpoints.crash_point(crashpoints.METADATA_AFTER_PUBLISH_BEFORE_CALLBACK)
        if self._on_written is not None:
            try:
                self._on_written(ckpt.batch_ms, info)
            except Exception:
                log.exception("on_written callback failed for batch %s", ckpt.batch_ms)

    def _publish_with_retries(
        self, ckpt: MetadataCheckpoint, name: CheckpointName
    ) -> tuple[CheckpointName, str, int]:
        last: BaseException | None = None
        for attempt in range(1, self._attempts_max + 1):
            if self._fence is not None:
                self._fence()  # a lost lease raises here and is never retried
            try:
                url = write_checkpoint(self.dir_url, ckpt, name, storage_options=self._so, key=self._key)
                return name, url, attempt
            except AlreadyPublishedError as exc:
                if exc.identical:  # our own earlier attempt landed (lost response, retried put)
                    return name, metadata_checkpoint_url(self.dir_url, name), attempt
                name = self._after_collision(ckpt, name, exc)
                last = exc
            except CheckpointValueError:
                raise
            except (OSError, CheckpointError) as exc:
                last = exc
                log.warning("checkpoint %s attempt %d failed: %s", name.filename(), attempt, exc)
                if self._stop.wait(self._retry_delay_s):
                    break
        assert last is not None
        raise last

    def _after_collision(
        self, ckpt: MetadataCheckpoint, name: CheckpointName, exc: AlreadyPublishedError
    ) -> CheckpointName:
        """Another writer took `name`. With a lease fence that still passes, the other writer was a
        zombie caught between its lease check and its publish: rank above it and go on. Without a
        fence there is no telling who is legitimate, so this writer stops."""
        url = metadata_checkpoint_url(self.dir_url, name)
        if self._fence is None:
            self._fenced = exc
            raise DriverLeaseError(
                f"{url} was written by another writer: a second driver is using this checkpoint "
                "directory; this writer stops"
            ) from exc
        self._fence()
        log.warning("checkpoint name %s was taken by a fenced writer; renaming", name.filename())
        existing = list_checkpoints(self.dir_url, storage_options=self._so)
        return next_name(max([name, *existing]), ckpt.batch_ms)

    def _report_failure(self, batch_ms: int, exc: BaseException) -> None:
        if self._on_failed is None:
            log.error("metadata checkpoint of batch %s failed: %s", batch_ms, exc)
            return
        try:
            self._on_failed(batch_ms, exc)
        except Exception:
            log.exception("on_failed callback failed for batch %s", batch_ms)

    # -- retention shell -----------------------------------------------------------------------

    def _apply_retention(self, newest: CheckpointName, url: str, attempts: int) -> WrittenInfo:
        try:
            names = list_checkpoints(self.dir_url, storage_options=self._so)
            summaries = [s for n in names if (s := self._summary_of(n)) is not None]
            existing, runs = self._rdd_dirs() if self._clean_rdd_data else ([], [])
            plan = plan_retention(
                summaries,
                names,
                existing,
                keep_n=self._keep_n,
                newest_valid=newest,
                existing_run_dirs=runs,
                live_runs=self._live_runs,
            )
            deleted_meta = [self._delete_metadata(n) for n in plan.delete_metadata]
            deleted_rdd = [self._delete_rdd_dir(k) for k in plan.delete_rdd_dirs]
            deleted_rdd += [self._delete_run_dir(run) for run in plan.delete_run_dirs]
        except (OSError, CheckpointError) as exc:  # retention is retried after the next checkpoint
            log.warning("retention after %s failed: %s", newest.filename(), exc)
            return WrittenInfo(newest, url, attempts)
        return WrittenInfo(newest, url, attempts, deleted_meta, deleted_rdd, plan.wal_clean_before_ms)

    def _summary_of(self, name: CheckpointName) -> CheckpointSummary | None:
        if name not in self._summaries:
            try:
                ckpt = read_checkpoint(self.dir_url, name, storage_options=self._so, key=self._key)
            except CorruptCheckpointError:
                return None
            self._summaries[name] = _summary(ckpt, name)
        return self._summaries[name]

    def _delete_metadata(self, name: CheckpointName) -> str:
        url = metadata_checkpoint_url(self.dir_url, name)
        storage, path = resolve(url, self._so)
        with contextlib.suppress(FileNotFoundError):
            storage.delete(path)
        self._summaries.pop(name, None)
        return url

    def _rdd_dirs(self) -> tuple[list[RddDirKey], list[str]]:
        """The data checkpoint dirs `rdd/<stream>/<batch_ms>`, and the run ids of `rdd/<run>/rdd-N` dirs."""
        storage, root = resolve(join(self.dir_url, RDD_DIR), self._so)
        found: list[RddDirKey] = []
        runs: list[str] = []
        for stream in storage.list_names(root):
            children = storage.list_names(join(root, stream))
            if any(RUN_CHILD.fullmatch(child) for child in children):
                runs.append(stream)
                continue
            found.extend((stream, int(batch)) for batch in children if batch.isdigit())
        return found, runs

    def _delete_run_dir(self, run: str) -> str:
        url = rdd_run_dir(self.dir_url, run)
        storage, path = resolve(url, self._so)
        with contextlib.suppress(FileNotFoundError):
            storage.delete(path, recursive=True)
        return url

    def _delete_rdd_dir(self, key: RddDirKey) -> str:
        url = rdd_checkpoint_dir(self.dir_url, key[0], key[1])
        rdd_data.delete(url, storage_options=self._so)
        return url

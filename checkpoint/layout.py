"""Where everything lives inside a checkpoint directory (any URL the storage registry serves).

::

    <dir>/metadata/checkpoint-<name_ms>-<seq>     metadata checkpoints (envelope); newest (name_ms, seq) wins
    <dir>/metadata/driver.lock                    storage with locks (local disk): held by the live driver
    <dir>/metadata/driver-epoch-<n>               object stores: epoch n's holder (create-once)
    <dir>/metadata/driver-heartbeat-<n>           object stores: epoch n's last renewal
    <dir>/receivedBlockMetadata/                  driver WAL of ReceivedBlockTracker events
    <dir>/receivedData/<stream>/                  receiver WAL of block payloads
    <dir>/rdd/<stream-id>/<batch_ms>/part-NNNNN   RDD data checkpoints, complete only with _COMMITTED
    <dir>/rdd/<run-id>/rdd-<rdd-id>/              rdd.checkpoint() of the Context run <run-id>
    <dir>/commits/<output-id>/<batch_ms:020d>     sink commit log records (create-once)
    <dir>/quarantine/batch-<batch_ms:020d>.json   input and error of a quarantined batch (create-once)

Names parsed back from listings (checkpoint files, epochs) are parsed here too, so the rest of the
package never builds or splits a name by hand. Ids that become path segments are restricted to
`[A-Za-z0-9_.-]` so that no id can escape its directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from checkpoint.errors import CheckpointValueError
from checkpoint.location import join

METADATA_DIR = "metadata"
RECEIVED_BLOCK_METADATA_DIR = "receivedBlockMetadata"
RECEIVED_DATA_DIR = "receivedData"
RDD_DIR = "rdd"
COMMITS_DIR = "commits"
QUARANTINE_DIR = "quarantine"
DRIVER_LOCK_FILE = "driver.lock"

_ID = re.compile(r"[A-Za-z0-9_.-]{1,200}")
_CHECKPOINT_NAME = re.compile(r"checkpoint-(\d{1,19})-(\d{1,19})")
_EPOCH_NAME = re.compile(r"driver-epoch-(\d{1,19})")


def check_id(value: object, what: str) -> str:
    """Validate a stable id used as a path segment; ints are accepted and turned into strings.

    Raises:
        CheckpointValueError: the id is empty, too long, or has characters outside [A-Za-z0-9_.-].
    """
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _ID.fullmatch(text) or text in {".", ".."}:
        raise CheckpointValueError(f"{what} must be 1-200 characters of [A-Za-z0-9_.-], got {value!r}")
    return text


def check_ms(value: object, what: str) -> int:
    """Validate a non-negative integer time in milliseconds."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CheckpointValueError(f"{what} must be an int >= 0 (milliseconds), got {value!r}")
    return value


def metadata_dir(dir_url: str) -> str:
    return join(dir_url, METADATA_DIR)


@dataclass(frozen=True, order=True)
class CheckpointName:
    """A metadata checkpoint's name: ordered by (name_ms, seq), newest last."""

    name_ms: int
    seq: int

    def filename(self) -> str:
        return f"checkpoint-{self.name_ms}-{self.seq}"

    @staticmethod
    def parse(filename: str) -> CheckpointName | None:
        """The name encoded in `filename`, or None if it is not a checkpoint file name."""
        m = _CHECKPOINT_NAME.fullmatch(filename)
        return CheckpointName(int(m.group(1)), int(m.group(2))) if m else None


def metadata_checkpoint_url(dir_url: str, name: CheckpointName) -> str:
    return join(metadata_dir(dir_url), name.filename())


def driver_lock_url(dir_url: str) -> str:
    return join(metadata_dir(dir_url), DRIVER_LOCK_FILE)


def driver_epoch_url(dir_url: str, epoch: int) -> str:
    return join(metadata_dir(dir_url), f"driver-epoch-{check_ms(epoch, 'epoch')}")


def driver_heartbeat_url(dir_url: str, epoch: int) -> str:
    return join(metadata_dir(dir_url), f"driver-heartbeat-{check_ms(epoch, 'epoch')}")


def parse_epoch(filename: str) -> int | None:
    """The epoch number in a `driver-epoch-<n>` file name, or None."""
    m = _EPOCH_NAME.fullmatch(filename)
    return int(m.group(1)) if m else None


def received_block_metadata_dir(dir_url: str) -> str:
    return join(dir_url, RECEIVED_BLOCK_METADATA_DIR)


def received_data_dir(dir_url: str, stream: int | str) -> str:
    return join(dir_url, RECEIVED_DATA_DIR, check_id(stream, "stream id"))


def rdd_stream_dir(dir_url: str, stream_id: int | str) -> str:
    return join(dir_url, RDD_DIR, check_id(stream_id, "stream id"))


RUN_CHILD = re.compile(r"rdd-\d{1,19}")
"""The name of an RDD's directory inside a run directory (what tells a run dir from a stream dir)."""


def rdd_run_dir(dir_url: str, run_id: str) -> str:
    """`<dir>/rdd/<run-id>`: where the Context run `run_id` writes rdd.checkpoint() files."""
    return join(dir_url, RDD_DIR, check_id(run_id, "run id"))


def rdd_of_run_dir(dir_url: str, run_id: str, rdd_id: int) -> str:
    """`<dir>/rdd/<run-id>/rdd-<rdd-id>`: one RDD's rdd.checkpoint() files."""
    return join(rdd_run_dir(dir_url, run_id), f"rdd-{check_ms(rdd_id, 'rdd id')}")


def rdd_checkpoint_dir(dir_url: str, stream_id: int | str, batch_ms: int) -> str:
    """`<dir>/rdd/<stream-id>/<batch_ms>`: pass it to `checkpoint.rdd_data`."""
    return join(rdd_stream_dir(dir_url, stream_id), str(check_ms(batch_ms, "batch_ms")))


def commits_dir(dir_url: str, output_id: str | None = None) -> str:
    base = join(dir_url, COMMITS_DIR)
    return base if output_id is None else join(base, check_id(output_id, "output id"))


def commit_record_name(batch_ms: int) -> str:
    """Zero-padded so that a listing sorts by time."""
    return f"{check_ms(batch_ms, 'batch_ms'):020d}"


def quarantine_dir(dir_url: str) -> str:
    """`<dir>/quarantine`: the dead-letter area of failed batches (checkpoint.quarantine)."""
    return join(dir_url, QUARANTINE_DIR)


def quarantine_record_name(batch_ms: int) -> str:
    """`batch-<batch_ms:020d>.json`, zero-padded so that a listing sorts by time."""
    return f"batch-{check_ms(batch_ms, 'batch_ms'):020d}.json"

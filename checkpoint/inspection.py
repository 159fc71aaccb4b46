"""Read-only reports on a checkpoint directory, for the CLI and for drills.

Only envelopes' JSON parts are read (after their CRC and signature checks); no blob is ever unpickled,
so inspecting an untrusted checkpoint runs no code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from checkpoint import rdd_data
from checkpoint.envelope import SigningKey
from checkpoint.errors import CheckpointSignatureError, CorruptCheckpointError
from checkpoint.layout import CheckpointName, metadata_checkpoint_url
from checkpoint.metadata import KeyChoice, MetadataCheckpoint, list_checkpoints, read_checkpoint, resolve_key


@dataclass(frozen=True)
class FileReport:
    """One metadata checkpoint file: its checkpoint if valid, else why not."""

    name: CheckpointName
    url: str
    checkpoint: MetadataCheckpoint | None = None
    error: str | None = None
    signature_failure: bool = False


@dataclass(frozen=True)
class DirectoryReport:
    """Every metadata checkpoint in a directory, newest first, and the state of the newest valid one."""

    dir_url: str
    key_id: str | None
    files: list[FileReport] = field(default_factory=list)
    uncommitted_refs: list[str] = field(default_factory=list)

    @property
    def newest_valid(self) -> FileReport | None:
        return next((f for f in self.files if f.checkpoint is not None), None)

    @property
    def invalid(self) -> list[FileReport]:
        return [f for f in self.files if f.checkpoint is None]


def inspect_directory(
    dir_url: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    key: KeyChoice = "env",
    check_data_refs: bool = True,
) -> DirectoryReport:
    """Validate every metadata checkpoint in `dir_url` and check the newest valid one's data references."""
    resolved: SigningKey | None = resolve_key(key)
    files: list[FileReport] = []
    for name in reversed(list_checkpoints(dir_url, storage_options=storage_options)):
        url = metadata_checkpoint_url(dir_url, name)
        try:
            ckpt = read_checkpoint(dir_url, name, storage_options=storage_options, key=resolved)
            files.append(FileReport(name, url, ckpt))
        except CorruptCheckpointError as exc:
            files.append(FileReport(name, url, None, str(exc), isinstance(exc, CheckpointSignatureError)))
    report = DirectoryReport(dir_url, resolved.key_id if resolved else None, files)
    newest = report.newest_valid
    if check_data_refs and newest is not None and newest.checkpoint is not None:
        for ref in newest.checkpoint.data_checkpoints:
            if not rdd_data.is_committed(ref.url, storage_options=storage_options):
                report.uncommitted_refs.append(ref.url)
    return report

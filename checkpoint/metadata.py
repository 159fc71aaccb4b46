"""Metadata checkpoints: the dataclass, its envelope encoding, synchronous write, and the reader.

A metadata checkpoint is one envelope (`checkpoint.envelope`) at `<dir>/metadata/checkpoint-<name_ms>-<seq>`:
the JSON part holds every field of `MetadataCheckpoint` except the graph, which is the blob.

Naming (SPARK-11740/11267): a batch gets two checkpoints (after generation, after completion), and
an old batch's completion checkpoint can be written after a newer batch's generation checkpoint while
carrying the newest state. So the file is named by `name_ms = max(name_ms seen so far, batch_ms)` and a
`seq` that grows with every write in the directory. The newest by (name_ms, seq) is the most recently
written, and a checkpoint for an older batch can never rank above one already written for a newer
batch's name. Every name is written once (create-once on object stores, which also fences a second
writer). The JSON part repeats (name_ms, seq); the reader refuses a file whose content disagrees with
its name, so an old checkpoint copied under a newer name is not picked.

`read_latest` tries names newest first and falls back past invalid ones, returning what it skipped.

JSON part versions (`json_version`; the envelope around it has its own version):

- 1 (no `json_version` field): each data checkpoint reference holds a `url` as the driver wrote it,
  which for a relative checkpoint path was relative to the driver's working directory.
- 2: a reference inside the checkpoint directory holds `path`, relative to that directory
  (`rdd/<stream-id>/<batch_ms>`), so a directory that is moved or copied, or read from another
  working directory, stays self-contained; one outside it (never written by the engine) keeps `url`.
  Readers of version 1 take `url` as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from checkpoint.envelope import KeyChoice, SignatureStatus, SigningKey, decode, encode, resolve_key
from checkpoint.errors import CheckpointValueError, CorruptCheckpointError, NoValidCheckpointError
from checkpoint.fingerprint import CodeFingerprint
from checkpoint.layout import CheckpointName, check_ms, metadata_checkpoint_url, metadata_dir
from checkpoint.location import base_name, join, relative_to, resolve
from checkpoint.publish import publisher_for
from wal import crashpoints

KIND = "dstream-metadata-checkpoint"
JSON_VERSION = 2
__all__ = ["KeyChoice", "resolve_key"]  # re-exported: they lived here before checkpoint.envelope


@dataclass(frozen=True)
class DataCheckpointRef:
    """A committed RDD data checkpoint a metadata checkpoint depends on."""

    stream_id: str
    batch_ms: int
    url: str


@dataclass(frozen=True)
class MetadataCheckpoint:
    """Everything a driver needs to restart, as plain data plus the cloudpickled graph bytes.

    `name` and `signature` are filled in by the reader; writers leave them as default.
    """

    batch_ms: int
    graph_blob: bytes = field(repr=False)
    pending_batches: tuple[int, ...] = ()
    stream_ids: tuple[str, ...] = ()
    data_checkpoints: tuple[DataCheckpointRef, ...] = ()
    master: str = ""
    app_name: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    fingerprint: CodeFingerprint | None = None
    state_sizes: Mapping[str, int] = field(default_factory=dict)
    wal_needed_from_ms: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    name: CheckpointName | None = None
    signature: SignatureStatus = "unsigned"

    def __post_init__(self) -> None:
        check_ms(self.batch_ms, "batch_ms")
        if not isinstance(self.graph_blob, bytes):
            raise CheckpointValueError(f"graph_blob must be bytes, got {type(self.graph_blob).__name__}")

    def json_part(self, name: CheckpointName, dir_url: str | None = None) -> dict[str, Any]:
        """The inspectable JSON part for this checkpoint written under `name` in directory `dir_url`."""
        return {
            "kind": KIND,
            "json_version": JSON_VERSION,
            "name_ms": name.name_ms,
            "seq": name.seq,
            "batch_ms": self.batch_ms,
            "pending_batches": sorted(self.pending_batches),
            "stream_ids": [str(s) for s in self.stream_ids],
            "data_checkpoints": [_ref_json(r, dir_url) for r in self.data_checkpoints],
            "master": self.master,
            "app_name": self.app_name,
            "config": dict(self.config),
            "fingerprint": self.fingerprint.to_json() if self.fingerprint else None,
            "state_sizes": dict(self.state_sizes),
            "wal_needed_from_ms": self.wal_needed_from_ms,
            "graph_blob_bytes": len(self.graph_blob),
            "extra": dict(self.extra),
        }

    @staticmethod
    def from_json_part(
        raw: Mapping[str, Any], blob: bytes, signature: SignatureStatus, dir_url: str | None = None
    ) -> MetadataCheckpoint:
        """Rebuild from a decoded JSON part read from directory `dir_url`.

        Raises:
            KeyError, TypeError, ValueError: a field is missing or malformed, or the JSON version is
                newer than this reader knows.
        """
        if raw.get("kind") != KIND:
            raise ValueError(f"kind {raw.get('kind')!r}, expected {KIND!r}")
        version = raw.get("json_version", 1)
        if version not in (1, JSON_VERSION):
            raise ValueError(
                f"JSON part version {version!r}; this dstream reads versions 1 and {JSON_VERSION}"
            )
        fp = raw.get("fingerprint")
        return MetadataCheckpoint(
            batch_ms=int(raw["batch_ms"]),
            graph_blob=blob,
            pending_batches=tuple(int(t) for t in raw["pending_batches"]),
            stream_ids=tuple(str(s) for s in raw["stream_ids"]),
            data_checkpoints=tuple(_ref_from_json(r, dir_url) for r in raw["data_checkpoints"]),
            master=str(raw["master"]),
            app_name=str(raw["app_name"]),
            config=dict(raw["config"]),
            fingerprint=CodeFingerprint.from_json(fp) if fp else None,
            state_sizes={str(k): int(v) for k, v in raw["state_sizes"].items()},
            wal_needed_from_ms=raw["wal_needed_from_ms"],
            extra=dict(raw.get("extra") or {}),
            name=CheckpointName(int(raw["name_ms"]), int(raw["seq"])),
            signature=signature,
        )


def _ref_json(ref: DataCheckpointRef, dir_url: str | None) -> dict[str, Any]:
    inside = relative_to(dir_url, ref.url) if dir_url is not None else None
    where = {"path": inside} if inside is not None else {"url": ref.url}
    return {"stream_id": str(ref.stream_id), "batch_ms": ref.batch_ms, **where}


def _ref_from_json(raw: Mapping[str, Any], dir_url: str | None) -> DataCheckpointRef:
    if "path" in raw:
        path = str(raw["path"])
        if dir_url is None:
            raise ValueError(f"reference {path!r} is relative to the checkpoint directory, which is unknown")
        url = join(dir_url, path)
    else:
        url = str(raw["url"])
    return DataCheckpointRef(str(raw["stream_id"]), int(raw["batch_ms"]), url)


@dataclass(frozen=True)
class SkippedCheckpoint:
    """A checkpoint file the reader passed over, and why."""

    name: CheckpointName
    url: str
    reason: str


def encode_checkpoint(
    checkpoint: MetadataCheckpoint, name: CheckpointName, key: SigningKey | None, dir_url: str | None = None
) -> bytes:
    """The envelope bytes of `checkpoint` written under `name` in directory `dir_url`."""
    return encode(checkpoint.json_part(name, dir_url), checkpoint.graph_blob, key)


def decode_checkpoint(
    data: bytes, name: CheckpointName | None, key: SigningKey | None, where: str, dir_url: str | None = None
) -> MetadataCheckpoint:
    """Validate and decode envelope bytes read from directory `dir_url`; never unpickles.

    Raises:
        CorruptCheckpointError: framing/CRC/JSON problems or content that disagrees with `name`.
        CheckpointSignatureError: signature policy failure.
    """
    env = decode(data, key=key, where=where)
    try:
        ckpt = MetadataCheckpoint.from_json_part(env.json_part, env.blob, env.signature, dir_url)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptCheckpointError(f"{where}: JSON part is not a metadata checkpoint: {exc!r}") from exc
    if name is not None and ckpt.name != name:
        raise CorruptCheckpointError(f"{where}: content says {ckpt.name}, file name says {name}")
    return ckpt


def list_checkpoints(
    dir_url: str, *, storage_options: Mapping[str, Any] | None = None
) -> list[CheckpointName]:
    """Names of the metadata checkpoint files in `dir_url`, oldest first (temp files ignored)."""
    storage, path = resolve(metadata_dir(dir_url), storage_options)
    names = (CheckpointName.parse(base_name(entry)) for entry in storage.list_names(path))
    return sorted(n for n in names if n is not None)


def write_checkpoint(
    dir_url: str,
    checkpoint: MetadataCheckpoint,
    name: CheckpointName,
    *,
    storage_options: Mapping[str, Any] | None = None,
    key: KeyChoice = "env",
) -> str:
    """Publish one checkpoint create-once under `name`; returns its URL.

    Raises:
        AlreadyPublishedError: `name` is taken (another writer: this one is fenced).
        PublishError: the storage write failed.
    """
    url = metadata_checkpoint_url(dir_url, name)
    data = encode_checkpoint(checkpoint, name, resolve_key(key), dir_url)
    storage, path = resolve(url, storage_options)
    publisher_for(storage).publish(
        path,
        data,
        before_publish=lambda: crashpoints.crash_point(crashpoints.METADATA_AFTER_WRITE_BEFORE_PUBLISH),
    )
    return url


def read_checkpoint(
    dir_url: str,
    name: CheckpointName,
    *,
    storage_options: Mapping[str, Any] | None = None,
    key: KeyChoice = "env",
) -> MetadataCheckpoint:
    """Read and verify one checkpoint.

    Raises:
        CorruptCheckpointError: missing, torn, corrupt, or mislabeled.
        CheckpointSignatureError: signature policy failure.
    """
    url = metadata_checkpoint_url(dir_url, name)
    storage, path = resolve(url, storage_options)
    try:
        data = storage.read(path)
    except FileNotFoundError as exc:
        raise CorruptCheckpointError(f"{url}: missing") from exc
    return decode_checkpoint(data, name, resolve_key(key), url, dir_url)


def read_latest(
    dir_url: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    key: KeyChoice = "env",
    require_valid: bool = False,
) -> tuple[MetadataCheckpoint | None, list[SkippedCheckpoint]]:
    """The newest valid checkpoint in `dir_url` and the newer ones skipped on the way (newest first).

    Returns (None, skipped) when there is no valid checkpoint; `skipped` is empty when there is none at
    all. Storage errors other than a missing/corrupt file propagate. Nothing is unpickled.

    Raises:
        NoValidCheckpointError: `require_valid` and checkpoint files exist but none is valid (Spark's
            getOrCreate without createOnError); the message lists every file and why it was refused.
    """
    resolved = resolve_key(key)
    skipped: list[SkippedCheckpoint] = []
    for name in reversed(list_checkpoints(dir_url, storage_options=storage_options)):
        try:
            return read_checkpoint(dir_url, name, storage_options=storage_options, key=resolved), skipped
        except CorruptCheckpointError as exc:
            skipped.append(SkippedCheckpoint(name, metadata_checkpoint_url(dir_url, name), str(exc)))
    if require_valid and skipped:
        reasons = "; ".join(s.reason for s in skipped)
        raise NoValidCheckpointError(
            f"no valid checkpoint in {dir_url!r} ({len(skipped)} refused: {reasons})"
        )
    return None, skipped


def next_name(latest: CheckpointName | None, batch_ms: int) -> CheckpointName:
    """The name for a checkpoint of `batch_ms` written after `latest` (pure; see module docstring)."""
    if latest is None:
        return CheckpointName(batch_ms, 0)
    return CheckpointName(max(latest.name_ms, batch_ms), latest.seq + 1)


def with_name(checkpoint: MetadataCheckpoint, name: CheckpointName) -> MetadataCheckpoint:
    """A copy of `checkpoint` labeled with `name` (as the reader would return it)."""
    return replace(checkpoint, name=name)

"""Read what a chaos pipeline committed into the checker's `CommittedOutput`.

Two views of the sink, as the checker needs both:
- the committed view, the one a reader of the sink is promised: the transactional file sink's
  `read_committed` (the commit log and the manifests), the SQLite sink's table, and for the canary
  everything it wrote (it has no commit log, which is the point of it);
- the raw view: every part file under the file sink's URL, read without the commit log. A record id in
  a published part that the committed view does not show is uncommitted data a plain reader would see
  (`uncommitted_visible`). Staged files (`_staging/`) are private and not part of the raw view.

Quarantined batches' input (`<checkpoint>/quarantine/`) is read too: those record ids are reported apart.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from contextlib import closing
from pathlib import Path
from typing import Any

from chaos.checker.model import BatchOutput, CommittedOutput, Writer
from chaos.pipelines import SQLITE_FILE, SQLITE_TABLE, make_sink
from chaos.records import decode, parse_kv_key
from chaos.spec import RunSpec
from checkpoint.location import resolve
from checkpoint.quarantine import Quarantine
from dstream.sinks.file_sinks import MANIFEST
from dstream.sinks.records import decode as decode_part

_PART_SUFFIX = ".jsonl"


def batch_output(outputs: list[dict[str, Any]], info: dict[str, Any] | None = None) -> BatchOutput:
    """A batch's output records as (consumed ids, rows), in the order they were written, and its
    writer when its commit-record `info` names one (`chaos.pipelines.WriterTaggedFileSink`)."""
    consumed = tuple(str(o["c"]) for o in outputs if "c" in o)
    rows = tuple(tuple(o["r"]) for o in outputs if "r" in o)
    return BatchOutput(consumed=consumed, rows=rows, writer=writer_of(info or {}))


def writer_of(info: dict[str, Any]) -> Writer | None:
    """The writer a commit record's info names, or None."""
    writer = info.get("writer")
    if not isinstance(writer, dict) or "pid" not in writer or "t" not in writer:
        return None
    return Writer(pid=int(writer["pid"]), t=float(writer["t"]))


def read_committed_output(spec: RunSpec) -> CommittedOutput:
    """The committed output of the run `spec` describes (see the module docstring)."""
    if spec.sink == "sqlite":
        batches = _sqlite_batches(Path(spec.output, SQLITE_FILE))
        visible: tuple[str, ...] = ()
    else:
        sink = make_sink(spec)
        committed = sink.read_committed()
        infos = sink.commit_records() if hasattr(sink, "commit_records") else {}
        batches = {int(ms): batch_output(list(outs), infos.get(ms)) for ms, outs in committed.items()}
        visible = () if spec.sink == "canary" else _uncommitted_visible(spec.output, committed)
    return CommittedOutput(batches=batches, uncommitted_visible=visible, quarantined=quarantined(spec))


def _sqlite_batches(path: Path) -> dict[int, BatchOutput]:
    if not path.exists():
        return {}
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        rows = conn.execute(f"SELECT key, value FROM {SQLITE_TABLE}").fetchall()
    outputs: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for key, count in sorted(rows):
        batch_ms, output = parse_kv_key(json.loads(key))
        outputs[batch_ms].extend([output] * int(json.loads(count)))
    return {ms: batch_output(outs) for ms, outs in outputs.items()}


def _uncommitted_visible(url: str, committed: dict[int, list[Any]]) -> tuple[str, ...]:
    """Consumed ids in published part files that the committed view does not show."""
    storage, root = resolve(url, None)
    root = root.rstrip("/")
    raw: dict[int, list[str]] = defaultdict(list)  # batch -> part paths
    for path in storage.find(root):
        relative = path[len(root) :].strip("/").split("/")
        if len(relative) == 2 and relative[0].isdigit() and relative[1].endswith(_PART_SUFFIX):
            raw[int(relative[0])].append(path)
    visible: list[str] = []
    for batch_ms, paths in sorted(raw.items()):
        named = _manifest_parts(storage, f"{root}/{batch_ms}/{MANIFEST}") if batch_ms in committed else set()
        for path in sorted(paths):
            if path.rsplit("/", 1)[-1] not in named:
                records = decode_part("jsonl", storage.read(path))
                visible.extend(str(r["c"]) for r in records if isinstance(r, dict) and "c" in r)
    return tuple(visible)


def _manifest_parts(storage: Any, path: str) -> set[str]:
    try:
        return {str(name) for name, _ in json.loads(storage.read(path))["parts"]}
    except FileNotFoundError:
        return set()


def quarantined(spec: RunSpec) -> tuple[str, ...]:
    """Ids of the records of quarantined batches' input."""
    quarantine = Quarantine(spec.checkpoint, spec.checkpoint_options)
    rids: list[str] = []
    for batch_ms in quarantine.batch_times():
        batch = quarantine.get(batch_ms)
        for records in batch.records.values() if batch else ():
            rids.extend(str(decode(r)["rid"]) for r in records)
    return tuple(rids)

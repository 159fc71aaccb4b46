"""`dstream checkpoint inspect|verify URL`: look at a checkpoint directory without running its code.

(`dstream checkpoint quarantine ...` is in dstream/cli/quarantine_commands.py.)

Both commands read only the JSON parts of the metadata checkpoints (after their CRC32C and signature
checks) and the commit markers of referenced RDD data checkpoints; no pickled graph is loaded. The
signing key, if any, comes from DSTREAM_CHECKPOINT_KEY. verify exits 1 when a checkpoint file is
corrupt or fails its signature, when no valid checkpoint exists, or when the newest valid one
references an RDD data checkpoint that is not committed. Both refuse a local path that does not
exist or is not a directory; a location that holds nothing is "nothing there", an error for verify.
"""

from __future__ import annotations

import json
from typing import Any

import click

from checkpoint.inspection import DirectoryReport, FileReport, inspect_directory
from checkpoint.metadata import MetadataCheckpoint
from dstream.cli.locations import report_if_empty, require_directory
from dstream.cli.quarantine_commands import quarantine
from dstream.cli.wal_commands import parse_storage_options, storage_option

WHAT = "checkpoint"


def _summary(ckpt: MetadataCheckpoint) -> dict[str, Any]:
    return {
        "batch_ms": ckpt.batch_ms,
        "pending_batches": list(ckpt.pending_batches),
        "streams": list(ckpt.stream_ids),
        "state_sizes": dict(ckpt.state_sizes),
        "data_checkpoints": [
            {"stream_id": r.stream_id, "batch_ms": r.batch_ms, "url": r.url} for r in ckpt.data_checkpoints
        ],
        "master": ckpt.master,
        "app_name": ckpt.app_name,
        "config": dict(ckpt.config),
        "fingerprint": ckpt.fingerprint.digest if ckpt.fingerprint else None,
        "wal_needed_from_ms": ckpt.wal_needed_from_ms,
        "graph_bytes": len(ckpt.graph_blob),
        "signature": ckpt.signature,
    }


def _file_line(f: FileReport) -> str:
    if f.checkpoint is None:
        kind = "BAD SIGNATURE" if f.signature_failure else "CORRUPT"
        return f"  {f.name.filename()}  {kind}: {f.error}"
    c = f.checkpoint
    return f"  {f.name.filename()}  ok  batch={c.batch_ms}  signature={c.signature}"


def _print_report(report: DirectoryReport, as_json: bool) -> None:
    newest = report.newest_valid
    if as_json:
        body = {
            "dir": report.dir_url,
            "key_id": report.key_id,
            "files": [
                {"name": f.name.filename(), "valid": f.checkpoint is not None, "error": f.error}
                for f in report.files
            ],
            "newest_valid": _summary(newest.checkpoint) if newest and newest.checkpoint else None,
            "uncommitted_data_checkpoints": report.uncommitted_refs,
        }
        click.echo(json.dumps(body, indent=2, sort_keys=True))
        return
    key = f"key {report.key_id}" if report.key_id else "no key (signatures not verified)"
    click.echo(f"checkpoint dir {report.dir_url}: {len(report.files)} metadata checkpoints, {key}")
    for f in report.files:
        click.echo(_file_line(f))
    if newest is None or newest.checkpoint is None:
        click.echo("no valid checkpoint")
        return
    click.echo(f"newest valid: {newest.name.filename()}")
    for field_name, value in _summary(newest.checkpoint).items():
        click.echo(f"  {field_name}: {json.dumps(value, sort_keys=True)}")
    for url in report.uncommitted_refs:
        click.echo(f"  UNCOMMITTED data checkpoint referenced: {url}")


@click.group(name="checkpoint")
def checkpoint() -> None:
    """Inspect or verify a checkpoint directory (reads JSON parts only; never unpickles)."""


@checkpoint.command()
@click.argument("url")
@storage_option
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def inspect(url: str, storage_options: tuple[str, ...], as_json: bool) -> None:
    """List metadata checkpoints and show the newest valid one: batches, streams, state, references."""
    options = parse_storage_options(storage_options)
    if not report_if_empty(url, options, WHAT):
        return
    _print_report(inspect_directory(url, storage_options=options), as_json)


@checkpoint.command()
@click.argument("url")
@storage_option
def verify(url: str, storage_options: tuple[str, ...]) -> None:
    """Exit 1 on any corrupt or badly signed checkpoint, no valid one, or an uncommitted reference."""
    options = parse_storage_options(storage_options)
    require_directory(url, options, WHAT)
    report = inspect_directory(url, storage_options=options)
    problems = [_file_line(f).strip() for f in report.invalid]
    problems += [f"uncommitted data checkpoint referenced: {u}" for u in report.uncommitted_refs]
    if report.newest_valid is None:
        problems.append("no valid metadata checkpoint")
    for line in problems:
        click.echo(line, err=True)
    if problems:
        raise SystemExit(1)
    newest = report.newest_valid
    assert newest is not None
    click.echo(f"ok: {len(report.files)} checkpoints valid, newest {newest.name.filename()}")


checkpoint.add_command(quarantine)

"""`dstream wal inspect|verify|repair URL`: look at a write-ahead log, check it, or cut its corruption.

inspect and verify only read. verify exits 1 when it finds corruption (a torn tail at the end of the
last local segment is a crash leftover, reported but not an error). repair cuts every damaged segment
at its first bad byte, keeping later segments, and lists what it dropped. Every command refuses a
local path that does not exist or is not a directory; a location that holds nothing is "nothing
there", an error for verify and repair (dstream.cli.locations).
"""

from __future__ import annotations

import json
from typing import Any

import click

from dstream.cli.locations import report_if_empty, require_directory
from wal import open_wal
from wal.inspection import FileReport, LogReport, inspect_log


def parse_storage_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """KEY=VALUE pairs; a VALUE that parses as JSON (numbers, booleans, objects) is used as such."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--storage-option")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


WHAT = "write-ahead log"

storage_option = click.option(
    "--storage-option", "-o", "storage_options", multiple=True, metavar="KEY=VALUE",
    help="fsspec storage option (repeatable), e.g. -o endpoint_url=http://127.0.0.1:9000",
)  # fmt: skip


def _status(report: FileReport) -> str:
    if report.damage is None:
        return "ok"
    kind = "torn tail (never acknowledged)" if report.torn_tail else "CORRUPT"
    return f"{kind} at offset {report.damage.offset}: {report.damage.reason}"


def _time_range(report: FileReport) -> str:
    if report.min_time_ms is None:
        return "-"
    return f"{report.min_time_ms}..{report.max_time_ms}"


def _print_report(report: LogReport) -> None:
    click.echo(f"log {report.url} ({report.backend}): {len(report.segments)} segments")
    for segment in report.segments:
        click.echo(f"  {segment.name}  records={segment.records}  "
                   f"time range (name)={segment.name.start_ms}..{segment.name.end_ms}")  # fmt: skip
        for file in segment.files:
            click.echo(f"    {file.path}  bytes={file.size}  records={file.records}  "
                       f"times={_time_range(file)}  {_status(file)}")  # fmt: skip
    total = sum(s.records for s in report.segments)
    click.echo(f"total: {total} records, {len(report.corrupt)} corrupt files")


@click.group(name="wal")
def wal() -> None:
    """Inspect, verify or repair a write-ahead log."""


@wal.command()
@click.argument("url")
@storage_option
def inspect(url: str, storage_options: tuple[str, ...]) -> None:
    """List segments, record counts, time ranges and any damage (read-only)."""
    options = parse_storage_options(storage_options)
    if not report_if_empty(url, options, WHAT):
        return
    _print_report(inspect_log(url, options))


@wal.command()
@click.argument("url")
@storage_option
def verify(url: str, storage_options: tuple[str, ...]) -> None:
    """Check every record's CRC; exit 1 if anything is corrupt or nothing is there (read-only)."""
    options = parse_storage_options(storage_options)
    require_directory(url, options, WHAT)
    report = inspect_log(url, options)
    for file in report.files:
        if file.damage is not None:
            click.echo(f"{file.path}: {_status(file)}")
    records = sum(s.records for s in report.segments)
    if report.corrupt:
        raise click.ClickException(f"{len(report.corrupt)} corrupt files in {url}; see `dstream wal repair`")
    click.echo(f"ok: {records} records in {len(report.segments)} segments")


@wal.command()
@click.argument("url")
@storage_option
def repair(url: str, storage_options: tuple[str, ...]) -> None:
    """Cut every damaged segment at its first bad byte and report what was dropped."""
    options = parse_storage_options(storage_options)
    require_directory(url, options, WHAT)
    log = open_wal(url, storage_options=options, repair=True)
    drops = log.statistics().dropped
    log.close()
    for drop in drops:
        click.echo(f"dropped {drop.bytes_dropped} bytes of {drop.path} from offset {drop.offset}: "
                   f"{drop.reason}")  # fmt: skip
    click.echo(f"repaired: {len(drops)} cuts" if drops else "nothing to repair")

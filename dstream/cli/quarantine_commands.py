"""`dstream checkpoint quarantine list|show|drop|replay`: act on the batches the engine quarantined.

A batch that failed every attempt under the `quarantine` policy has its input and error in
`<checkpoint>/quarantine/` (format: checkpoint/quarantine.py; policy: docs/recovery.md). `list` shows
each batch's time, record counts and error; `show` prints its records (one per line as JSON, or the
whole file with `--json`) so a user can re-feed them; `replay --push HOST:PORT` sends them to a running
push receiver with a `PushClient` (str and bytes records only, which is what a push stream carries);
`drop` deletes one batch for good. Reading a quarantine runs no code (it is JSON). A batch time that
is not quarantined is an error naming it and the times that are (exit 1).
"""

from __future__ import annotations

import json
from typing import Any

import click

from checkpoint.quarantine import Quarantine, QuarantinedBatch, encode_record
from dstream.cli.locations import report_if_empty, require_directory
from dstream.cli.wal_commands import parse_storage_options, storage_option
from dstream.client import PushClient

WHAT = "checkpoint"


def _batch_or_fail(quarantine: Quarantine, url: str, batch_ms: int) -> QuarantinedBatch:
    batch = quarantine.get(batch_ms)
    if batch is None:
        raise click.ClickException(
            f"{url}: no quarantined batch at {batch_ms} ms; quarantined: {quarantine.batch_times()}"
        )
    return batch


def _summary(batch: QuarantinedBatch) -> dict[str, Any]:
    return {
        "batch_ms": batch.batch_ms,
        "attempts": batch.attempts,
        "records": batch.counts(),
        "error": batch.error_first_line(),
    }


@click.group(name="quarantine")
def quarantine() -> None:
    """List, show, replay or drop the input of quarantined (poison) batches."""


@quarantine.command(name="list")
@click.argument("url")
@storage_option
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def list_batches(url: str, storage_options: tuple[str, ...], as_json: bool) -> None:
    """Quarantined batches: time, attempts, records per input stream, the error's last line."""
    options = parse_storage_options(storage_options)
    if not report_if_empty(url, options, WHAT):
        return
    store = Quarantine(url, options)
    batches = [_batch_or_fail(store, url, t) for t in store.batch_times()]
    if as_json:
        click.echo(json.dumps([_summary(b) for b in batches], indent=2, sort_keys=True))
        return
    if not batches:
        click.echo(f"{url}: no quarantined batches")
    for b in batches:
        counts = " ".join(f"stream {sid}: {n}" for sid, n in sorted(b.counts().items()))
        click.echo(f"{b.batch_ms}  attempts={b.attempts}  records [{counts}]  {b.error_first_line()}")


@quarantine.command()
@click.argument("url")
@click.argument("batch_ms", type=click.IntRange(min=0))
@storage_option
@click.option("--json", "as_json", is_flag=True, help="the whole batch: error and tagged records")
def show(url: str, batch_ms: int, storage_options: tuple[str, ...], as_json: bool) -> None:
    """Print a quarantined batch's records, one JSON value per line (tags: checkpoint/quarantine.py)."""
    options = parse_storage_options(storage_options)
    require_directory(url, options, WHAT)
    batch = _batch_or_fail(Quarantine(url, options), url, batch_ms)
    if as_json:
        body = {
            **_summary(batch),
            "error": batch.error,
            "streams": {sid: [encode_record(r) for r in recs] for sid, recs in batch.records.items()},
        }
        click.echo(json.dumps(body, indent=2, sort_keys=True))
        return
    for recs in batch.records.values():
        for record in recs:
            click.echo(json.dumps(encode_record(record)))


@quarantine.command()
@click.argument("url")
@click.argument("batch_ms", type=click.IntRange(min=0))
@storage_option
def drop(url: str, batch_ms: int, storage_options: tuple[str, ...]) -> None:
    """Delete a quarantined batch's records and error for good."""
    options = parse_storage_options(storage_options)
    require_directory(url, options, WHAT)
    store = Quarantine(url, options)
    batch = _batch_or_fail(store, url, batch_ms)
    store.drop(batch_ms)
    click.echo(f"dropped quarantined batch {batch_ms} ms ({sum(batch.counts().values())} records)")


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{value!r}: expected HOST:PORT with a port in 1..65535")
    return host, int(port)


@quarantine.command()
@click.argument("url")
@click.argument("batch_ms", type=click.IntRange(min=0))
@click.option("--push", "push_to", required=True, help="HOST:PORT of a running push receiver")
@click.option("--producer-id", default=None, help="producer id (default: quarantine-<batch_ms>)")
@click.option("--timeout-s", default=30.0, type=click.FloatRange(min=0.1), help="bound on the send")
@storage_option
def replay(
    url: str,
    batch_ms: int,
    push_to: str,
    producer_id: str | None,
    timeout_s: float,
    storage_options: tuple[str, ...],
) -> None:
    """Send a quarantined batch's records to a push receiver (the quarantine is kept; drop it after)."""
    host, port = _host_port(push_to)
    options = parse_storage_options(storage_options)
    require_directory(url, options, WHAT)
    batch = _batch_or_fail(Quarantine(url, options), url, batch_ms)
    records = [r for recs in batch.records.values() for r in recs]
    bad = [r for r in records if not isinstance(r, (str, bytes))]
    if bad:
        raise click.ClickException(
            f"batch {batch_ms} ms holds {len(bad)} records that are not str or bytes "
            f"(first: {bad[0]!r:.80}); a push receiver takes only those: use `show` and re-feed them"
        )
    with PushClient(host, port, producer_id or f"quarantine-{batch_ms}", timeout_s=timeout_s) as client:
        client.send(records)
    click.echo(f"replayed {len(records)} records of batch {batch_ms} ms to {host}:{port}")

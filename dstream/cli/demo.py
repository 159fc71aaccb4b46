"""`dstream demo`: the stateful word count on the embedded engine, shown as a live per-batch table."""

from __future__ import annotations

import datetime as dt

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from dstream.cli.locations import refuse_a_file
from dstream.demo import DemoBatch, run_demo
from dstream.master import parse_master


def _table(rows: list[DemoBatch], batch_seconds: float) -> Table:
    table = Table(title=f"dstream demo: stateful word count, {batch_seconds:g} s batches")
    for name in ("batch", "records", "processing ms", "sched. delay ms", "distinct words", "top 3 words"):
        table.add_column(name, justify="left" if name in ("batch", "top 3 words") else "right")
    for row in rows:
        table.add_row(
            dt.datetime.fromtimestamp(row.batch_ms / 1000).strftime("%H:%M:%S"),
            f"{row.records:,}",
            "-" if row.processing_ms is None else str(row.processing_ms),
            "-" if row.scheduling_delay_ms is None else str(row.scheduling_delay_ms),
            f"{row.distinct_words:,}",
            " ".join(f"{w}={c}" for w, c in row.top_words[:3]),
        )
    return table


@click.command()
@click.option("--batches", default=10, show_default=True, type=click.IntRange(min=1), help="Batches to run.")
@click.option("--batch-seconds", default=1.0, show_default=True, type=click.FloatRange(min=0.05))
@click.option("--lines-per-batch", default=20_000, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--master",
    default="local[*]",
    show_default=True,
    help="local, local[N], local[*], local-cluster[N] or dask://HOST:PORT.",
)
@click.option("--checkpoint", "checkpoint_dir", default=None, help="Checkpoint URL (default: a temp dir).")
def demo(
    batches: int, batch_seconds: float, lines_per_batch: int, master: str, checkpoint_dir: str | None
) -> None:
    """Run a stateful word count over a built-in generator and exit after BATCHES batches."""
    try:
        parse_master(master)
    except ValueError as exc:
        raise click.ClickException(f"--master: {exc}") from exc
    if checkpoint_dir is not None:
        refuse_a_file(checkpoint_dir, "checkpoint")
    console = Console()
    rows: list[DemoBatch] = []
    stream = run_demo(
        batches=batches,
        batch_seconds=batch_seconds,
        lines_per_batch=lines_per_batch,
        master=master,
        checkpoint_dir=checkpoint_dir,
    )
    with Live(_table(rows, batch_seconds), console=console, auto_refresh=False) as live:
        for row in stream:
            rows.append(row)
            live.update(_table(rows, batch_seconds), refresh=True)
    if not console.is_terminal:
        console.line()  # Live leaves the cursor on the table's last line when not on a terminal
    total = sum(r.records for r in rows)
    console.print(f"{len(rows)} batches, {total:,} lines, {total * 10:,} words counted.")

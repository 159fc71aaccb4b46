"""Entry point of the `dstream` console script: one click group, one module per command family."""

from __future__ import annotations

import click

from dstream.cli.checkpoint_commands import checkpoint
from dstream.cli.demo import demo
from dstream.cli.wal_commands import wal


@click.group()
@click.version_option(package_name="dstream-engine")
def main() -> None:
    """dstream: a fault-tolerant discretized-stream engine."""


main.add_command(wal)
main.add_command(checkpoint)
main.add_command(demo)

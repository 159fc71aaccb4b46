"""Entry point of the `dstream` console script: one click group, one module per command family.

No user error ends in a traceback: an error raised by a command is shown as one line naming the bad
value (its message), with exit status 1. ``dstream --debug ...`` shows the traceback instead.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import click

from checkpoint.errors import CheckpointError
from dstream.cli.checkpoint_commands import checkpoint
from dstream.cli.demo import demo
from dstream.cli.wal_commands import wal
from dstream.errors import DStreamError
from wal.errors import WALError

# Errors whose message is written for the user: misuse (ValueError, TypeError), the filesystem
# (OSError, e.g. a missing file or a refused connection) and the error roots of the packages.
USER_ERRORS = (ValueError, TypeError, OSError, LookupError, DStreamError, WALError, CheckpointError)


class OneLineErrors(click.Group):
    """A click group that turns an exception from a command into one ``Error: ...`` line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if ctx.meta.get("dstream.debug"):
                raise
            raise click.ClickException(one_line(exc)) from exc


def one_line(exc: BaseException) -> str:
    """The exception's type and message on one line, with a hint at --debug for anything unexpected."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, USER_ERRORS):
        return message
    return f"{type(exc).__name__}: {message} (an internal error: run with --debug for the traceback)"


@click.group(cls=OneLineErrors)
@click.version_option(package_name="dstream-engine")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """dstream: a fault-tolerant discretized-stream engine."""
    ctx.meta["dstream.debug"] = debug


main.add_command(wal)
main.add_command(checkpoint)
main.add_command(demo)

COMMAND_GROUP = "dstream.cli"


def add_entry_point_commands(group: click.Group, entry_point_group: str = COMMAND_GROUP) -> list[str]:
    """Add the click commands that installed packages declare in the `dstream.cli` entry point group.

    This is how `chaos` (and later `drill`) join the CLI without the engine importing them. A command
    that fails to load, or whose name is taken, is replaced by one that explains why when it is run,
    so one broken package never breaks the rest of the CLI. Returns the names added.
    """
    added = []
    for point in sorted(entry_points(group=entry_point_group), key=lambda p: p.name):
        if point.name in group.commands:
            continue
        try:
            command = point.load()
            if not isinstance(command, click.Command):
                raise TypeError(f"{point.value} is {command!r}, not a click command")
        except Exception as exc:
            command = _unavailable(point.name, point.value, exc)
        group.add_command(command, point.name)
        added.append(point.name)
    return added


def _unavailable(name: str, value: str, error: Exception) -> click.Command:
    def explain() -> None:
        raise click.ClickException(f"command {name!r} ({value}) could not be loaded: {one_line(error)}")

    return click.Command(name, callback=explain, help=f"(unavailable: {value} failed to load)")


add_entry_point_commands(main)

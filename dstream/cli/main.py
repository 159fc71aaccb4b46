"""Entry point of the `dstream` console script: one click group, one module per command family.

No user error ends in a traceback: an error raised by a command is shown as one line naming the bad
value (its message), with exit status 1. ``dstream --debug ...`` shows the traceback instead.
"""

from __future__ import annotations

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

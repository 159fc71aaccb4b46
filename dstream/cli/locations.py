"""Checks of the locations CLI commands are given, run before a command reads or repairs anything.

A typo must not look like an empty, healthy log. So a local path that does not exist, or is a file
where a directory is expected, is refused with one line naming it; a directory or an object-store
prefix that holds nothing is reported as "nothing there", which `verify` and `repair` treat as a
failure (non-zero exit) and `inspect` only reports.
"""

from __future__ import annotations

from typing import Any

import click

from checkpoint.location import capability_of, resolve


class NothingThereError(click.ClickException):
    """The location exists (or is an object-store prefix) but holds nothing."""


def require_directory(url: str, storage_options: dict[str, Any], what: str) -> None:
    """Refuse ``url`` unless it is a directory (or prefix) that holds something.

    Args:
        url: a local path or an fsspec URL.
        storage_options: fsspec options for ``url``.
        what: what the directory should hold, for messages (e.g. "write-ahead log").

    Raises:
        click.ClickException: a local path that does not exist or is not a directory.
        NothingThereError: the directory or prefix is empty.
    """
    storage, path = resolve(url, storage_options)
    if capability_of(storage) == "local":
        if not storage.exists(path):
            raise click.ClickException(f"{url}: no such directory; expected a {what} directory")
        if not storage.is_dir(path):
            raise click.ClickException(f"{url}: is a file, not a directory; expected a {what} directory")
    if not storage.list_names(path):
        raise NothingThereError(f"{url}: nothing there (no {what})")


def report_if_empty(url: str, storage_options: dict[str, Any], what: str) -> bool:
    """For read-only commands: True if there is something to show, else print "nothing there" and False.

    Raises:
        click.ClickException: a local path that does not exist or is not a directory.
    """
    try:
        require_directory(url, storage_options, what)
    except NothingThereError as empty:
        click.echo(empty.message)
        return False
    return True


def refuse_a_file(url: str, what: str) -> None:
    """Refuse a local path that exists and is not a directory (a directory to be created is fine)."""
    storage, path = resolve(url, {})
    if capability_of(storage) == "local" and storage.exists(path) and not storage.is_dir(path):
        raise click.ClickException(f"{url}: is a file, not a directory; expected a {what} directory")

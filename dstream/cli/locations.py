"""Checks of the locations CLI commands are given, run before a command reads or repairs anything.

A typo must not look like an empty, healthy log. So a local path that does not exist, or is a file
where a directory is expected, is refused with one line naming it; a directory or an object-store
prefix that holds nothing is reported as "nothing there", which `verify` and `repair` treat as a
failure (non-zero exit) and `inspect` only reports.
"""

from __future__ import annotations

import os
from typing import Any

import click

from checkpoint.location import capability_of, fresh_listing, resolve


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
    fs, path = resolve(url, storage_options)
    if capability_of(fs) == "local":
        if not os.path.exists(path):
            raise click.ClickException(f"{url}: no such directory; expected a {what} directory")
        if not os.path.isdir(path):
            raise click.ClickException(f"{url}: is a file, not a directory; expected a {what} directory")
    fresh_listing(fs, path)
    try:
        entries = fs.ls(path, detail=False)
    except FileNotFoundError:
        entries = []
    if not entries:
        raise NothingThereError(f"{url}: nothing there (no {what})")


def refuse_a_file(url: str, what: str) -> None:
    """Refuse a local path that exists and is not a directory (a directory to be created is fine)."""
    fs, path = resolve(url, {})
    if capability_of(fs) == "local" and os.path.exists(path) and not os.path.isdir(path):
        raise click.ClickException(f"{url}: is a file, not a directory; expected a {what} directory")

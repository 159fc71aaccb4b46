"""Raw fsspec access for tests that damage or inspect stored files behind the product's back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import fsspec


def raw_fs(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec filesystem and path for `url`, bypassing `wal.storage` (so nothing is recorded)."""
    fs, path = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    return fs, str(path)

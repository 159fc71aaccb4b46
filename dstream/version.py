"""The engine's version string (`Context.version`, PySpark's ``sc.version``), from the installed package."""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "dstream-engine"

try:
    __version__: str = metadata.version(DISTRIBUTION)
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

"""Master URL parsing: turns `local[4]`, `local-cluster[2]` or `dask://host:port` into a small spec.

Kept apart from the context so that backends and the CLI can validate a master URL without
starting anything. Accepted forms (docs/architecture.md section 2):

- ``local`` (one thread), ``local[N]`` (N threads), ``local[*]`` (one thread per core);
- ``local-inline``: one thread, tasks run in the calling thread in order (deterministic tests);
  the conf key ``dstream.local.inline=true`` does the same for any ``local`` master;
- ``local-cluster[N]``: an embedded Dask cluster of N worker processes (Dask backend);
- ``dask://HOST:PORT`` or ``tcp://HOST:PORT``: an existing Dask scheduler (Dask backend).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from dstream.errors import DStreamValueError

_LOCAL = re.compile(r"^local(?:\[(?P<n>\*|\d+)\])?$")
_LOCAL_CLUSTER = re.compile(r"^local-cluster\[(?P<n>\d+)\]$")
_DASK = re.compile(r"^(?P<scheme>dask|tcp)://(?P<host>[^:/\s]+):(?P<port>\d+)$")

EXPECTED_FORMS = (
    "local, local[N], local[*], local-inline, local-cluster[N], dask://HOST:PORT, tcp://HOST:PORT"
)


@dataclass(frozen=True)
class MasterSpec:
    """What a master URL asks for.

    Attributes:
        url: the master URL as given.
        kind: ``"local"``, ``"local-cluster"`` or ``"dask"``.
        threads: worker threads (local) or worker processes (local-cluster); None for dask.
        inline: local only: run tasks in the calling thread, one after the other.
        address: ``tcp://host:port`` of an existing Dask scheduler (dask only).
    """

    url: str
    kind: str
    threads: int | None = None
    inline: bool = False
    address: str | None = None


def _positive(url: str, text: str) -> int:
    n = int(text)
    if n < 1:
        raise DStreamValueError(f"master {url!r}: the count must be at least 1, got {n}")
    return n


def parse_master(url: object) -> MasterSpec:
    """Parse a master URL.

    Raises:
        DStreamValueError: the URL is not a string or not one of the accepted forms.
    """
    if not isinstance(url, str):
        raise DStreamValueError(f"master must be a string like 'local[*]', got {url!r}")
    text = url.strip()
    if text == "local-inline":
        return MasterSpec(url=url, kind="local", threads=1, inline=True)
    m = _LOCAL.match(text)
    if m:
        n = m.group("n")
        threads = 1 if n is None else (os.cpu_count() or 1) if n == "*" else _positive(url, n)
        return MasterSpec(url=url, kind="local", threads=threads)
    m = _LOCAL_CLUSTER.match(text)
    if m:
        return MasterSpec(url=url, kind="local-cluster", threads=_positive(url, m.group("n")))
    m = _DASK.match(text)
    if m:
        address = f"tcp://{m.group('host')}:{m.group('port')}"
        return MasterSpec(url=url, kind="dask", address=address)
    raise DStreamValueError(f"malformed master URL {url!r}; expected one of: {EXPECTED_FORMS}")

"""Which storage URLs the Dask workers can reach: a pure decision, made before anything is written.

Tasks write data checkpoints and file sinks and read the receiver WAL, so every location they use must
be reachable from every worker. Workers of an embedded cluster (``local-cluster[N]``) share the driver's
machine and disk, but not its memory: fsspec's ``memory://`` lives in one process. Workers of a
scheduler we join (``dask://``) may be on other machines, so a path on the driver's local disk is
refused too, unless the user declares a shared mount (``dstream.dask.sharedFilesystem=true``).
"""

from __future__ import annotations

from dstream.config import DASK_SHARED_FILESYSTEM_KEY

_PROCESS_LOCAL = ("memory",)
_MACHINE_LOCAL = ("file", "local")


def _protocol(url: str) -> str:
    head, sep, _ = url.partition("://")
    return head.lower() if sep else "file"


def refusal(url: str, what: str, master: str, joins_scheduler: bool, shared_filesystem: bool) -> str | None:
    """Why `what` at `url` cannot be used with this master, or None when the workers reach it.

    Args:
        url: an fsspec URL or a local path.
        what: names the use in the message, e.g. ``"checkpoint directory"``.
        master: the master URL, for the message.
        joins_scheduler: the master is ``dask://``/``tcp://`` (workers may be on other machines).
        shared_filesystem: the user declared the driver's local paths reachable from every worker.
    """
    protocol = _protocol(url)
    if protocol in _PROCESS_LOCAL:
        return (
            f"{what} {url!r} is in the driver's memory, which the Dask workers of master {master!r} cannot"
            " see; use a directory on disk or an object store (s3://...)"
        )
    if joins_scheduler and protocol in _MACHINE_LOCAL and not shared_filesystem:
        return (
            f"{what} {url!r} is on the driver's local disk, which the workers of master {master!r} (maybe"
            " on other machines) cannot reach; use an object store (s3://...), or set"
            f" {DASK_SHARED_FILESYSTEM_KEY}=true if every worker mounts this path"
        )
    return None

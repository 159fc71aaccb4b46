"""A driver on ``local-cluster[2]`` that prints its workers' pids and waits to be killed.

`python -m tests.backends.dask_driver_child`: prints ``pids <json>`` once a job ran on the cluster,
then blocks reading stdin (the parent SIGKILLs it, or closes stdin to let it stop cleanly).
"""

from __future__ import annotations

import json
import sys

from dstream.context import Context


def main() -> int:
    sc = Context("local-cluster[2]", "dask-driver-child")
    assert sc.parallelize(range(10), 2).sum() == 45
    pids = sc._backend.worker_processes()  # type: ignore[attr-defined]
    print("pids " + json.dumps(sorted(pids.values())), flush=True)
    sys.stdin.read()
    sc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

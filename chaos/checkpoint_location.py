"""Where a chaos run or a drill keeps its checkpoint, when the user names it: probed before the run, and
given a short driver lease on an object store.

`probe_checkpoint` checks that the URL answers (within `PROBE_TIMEOUT_S`) and holds nothing yet, and
says whether it is an object store. On an object store a killed driver's successor finds the lease
still held by the dead driver: the drivers of a run get a short lease (`LEASE_TIMEOUT_S`) and wait for
it (`LEASE_WAIT_S`) rather than give up (`lease_conf`). `run_checkpoint` is run n's own directory
under a suite's checkpoint URL: every run starts from an empty checkpoint.
"""

from __future__ import annotations

import concurrent.futures

from chaos.errors import ChaosValueError
from checkpoint.location import capability_of, resolve

LEASE_TIMEOUT_S = 5
LEASE_WAIT_S = 3 * LEASE_TIMEOUT_S  # a killed driver's successor waits its lease out instead of failing
LEASE_TIMEOUT_KEY = "dstream.checkpoint.leaseTimeoutS"
LEASE_WAIT_KEY = "dstream.checkpoint.leaseWaitS"
PROBE_TIMEOUT_S = 20.0


def lease_conf() -> dict[str, str]:
    """The drivers' configuration for a checkpoint on an object store."""
    return {LEASE_TIMEOUT_KEY: str(LEASE_TIMEOUT_S), LEASE_WAIT_KEY: str(LEASE_WAIT_S)}


def run_checkpoint(base: str, index: int) -> str:
    """Run `index`'s checkpoint directory under the suite's checkpoint URL `base`."""
    return f"{base.rstrip('/')}/run-{index:03d}"


def probe_checkpoint(url: str) -> bool:
    """Check that `url` is reachable and holds no checkpoint yet; True if it is an object store.

    Raises:
        ChaosValueError: unreachable (within `PROBE_TIMEOUT_S`), or not empty.
    """

    def probe() -> tuple[bool, list[str]]:
        storage, path = resolve(url)
        names = storage.list_names(path) if storage.exists(path) else []
        return capability_of(storage) == "object-store", names

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        object_store, names = pool.submit(probe).result(timeout=PROBE_TIMEOUT_S)
    except concurrent.futures.TimeoutError:
        raise ChaosValueError(
            f"checkpoint {url!r} is not reachable: no answer in {PROBE_TIMEOUT_S:.0f} s"
        ) from None
    except Exception as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise ChaosValueError(f"checkpoint {url!r} is not reachable: {message}") from None
    finally:
        pool.shutdown(wait=False)
    if names:
        raise ChaosValueError(
            f"checkpoint {url!r} is not empty ({len(names)} entries): a run needs a fresh location"
        )
    return object_store

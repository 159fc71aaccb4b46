"""The chaos driver stops on its own only when awaitTermination's error says it was fenced."""

from __future__ import annotations

from chaos.driver_process import was_fenced
from checkpoint.errors import DriverLeaseError
from dstream.errors import JobFailedError


def raised_from(cause: BaseException) -> JobFailedError:
    try:
        raise JobFailedError(f"driver lease lost: {cause!r}") from cause
    except JobFailedError as exc:
        return exc


def test_only_a_lost_lease_counts_as_fenced() -> None:
    assert was_fenced(raised_from(DriverLeaseError("driver 'a' (epoch 0) was fenced")))
    assert was_fenced(DriverLeaseError("released"))
    assert not was_fenced(raised_from(OSError("EIO")))  # a failed batch: the driver keeps running
    assert not was_fenced(JobFailedError("no cause"))

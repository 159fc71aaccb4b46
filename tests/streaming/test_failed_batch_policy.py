"""The failed-batch decision: every (policy, outcome, attempt) combination, and its bad inputs."""

from __future__ import annotations

import pytest

from dstream.config import SchedulerConfig, StreamingConfig
from dstream.errors import DStreamValueError
from dstream.streaming.failed_batch_policy import FailedBatchAction, decide

ATTEMPTS_MAX = 4


@pytest.mark.parametrize("policy", ["quarantine", "fail-stop"])
@pytest.mark.parametrize("attempts_done", range(1, ATTEMPTS_MAX + 1))
def test_success_is_done_whatever_the_attempt(policy: str, attempts_done: int) -> None:
    assert decide(policy, False, attempts_done, ATTEMPTS_MAX) is FailedBatchAction.DONE


@pytest.mark.parametrize("attempts_done", range(1, ATTEMPTS_MAX + 1))
def test_fail_stop_never_retries(attempts_done: int) -> None:
    assert decide("fail-stop", True, attempts_done, ATTEMPTS_MAX) is FailedBatchAction.KEEP_PENDING


def test_quarantine_retries_until_the_bound_then_quarantines() -> None:
    actions = [decide("quarantine", True, n, ATTEMPTS_MAX) for n in range(1, ATTEMPTS_MAX + 1)]
    assert actions == [FailedBatchAction.RETRY] * (ATTEMPTS_MAX - 1) + [FailedBatchAction.QUARANTINE]
    assert decide("quarantine", True, 1, 1) is FailedBatchAction.QUARANTINE  # one attempt: no retry


@pytest.mark.parametrize(
    ("policy", "attempts_done", "attempts_max", "match"),
    [
        ("retry-forever", 1, 3, "retry-forever"),
        ("quarantine", 0, 3, "attempts_done=0"),
        ("quarantine", 1, 0, "attempts_max=0"),
    ],
)
def test_bad_inputs_name_the_value(policy: str, attempts_done: int, attempts_max: int, match: str) -> None:
    with pytest.raises(DStreamValueError, match=match):
        decide(policy, True, attempts_done, attempts_max)


def test_conf_keys() -> None:
    assert StreamingConfig.from_conf({}).scheduler == SchedulerConfig()
    assert (
        SchedulerConfig().failed_batch_policy == "quarantine"
        and SchedulerConfig().failed_batch_attempts_max == 3
    )
    conf = StreamingConfig.from_conf(
        {"dstream.streaming.failedBatchPolicy": "Fail-Stop", "dstream.streaming.failedBatchAttemptsMax": "5"}
    )
    assert conf.scheduler.failed_batch_policy == "fail-stop" and conf.scheduler.failed_batch_attempts_max == 5
    with pytest.raises(
        DStreamValueError, match="failedBatchPolicy='skip': expected one of quarantine, fail-stop"
    ):
        StreamingConfig.from_conf({"dstream.streaming.failedBatchPolicy": "skip"})
    with pytest.raises(DStreamValueError, match="failedBatchAttemptsMax"):
        StreamingConfig.from_conf({"dstream.streaming.failedBatchAttemptsMax": "0"})

"""The engine's configuration: one typed, frozen object parsed once from the Context's string conf.

PySpark keeps configuration as strings in a SparkConf; dstream reads them here and nowhere else.
`EngineConfig.from_conf(conf)` (when a Context is created) and `StreamingConfig.from_conf(conf)` (when a
StreamingContext starts) turn the mapping into frozen dataclasses, one section per component (`receiver`,
`checkpoint`), so a bad value fails once, at the edge, with the key, the value and what was expected;
components receive their section and never parse strings again.

Each receiver setting has one snake_case name (`ReceiverConfig` field, also accepted as
`dstream.receiver.<name>`) and, where Spark has one, Spark's key. Spark's duration strings ("200ms",
"2s") are accepted for times. When both names are given, ours wins.

Keys (Spark's where Spark has the setting):

| key | section.field | default |
|---|---|---|
| spark.default.parallelism | engine.default_parallelism | the backend's |
| dstream.local.inline | engine.local_inline | false |
| spark.streaming.clock | engine.manual_clock ("manual" in the value) | system clock |
| dstream.dask.dashboard | engine.dask.dashboard | false |
| dstream.dask.workerTimeout | engine.dask.worker_timeout_s | 10s |
| dstream.dask.taskRetriesMax | engine.dask.task_retries_max | 4 |
| dstream.dask.sharedFilesystem | engine.dask.shared_filesystem | false |
| dstream.dask.locality | engine.dask.locality | true |
| dstream.checkpoint.async | checkpoint.asynchronous | true |
| dstream.checkpoint.keep | checkpoint.keep_n | 10 |
| dstream.checkpoint.leaseTimeoutS | checkpoint.lease_timeout_s | 30 |
| dstream.checkpoint.leaseWaitS | checkpoint.lease_wait_s | 0 |
| dstream.checkpoint.allowQueueStream | checkpoint.allow_queue_stream | false |
| spark.streaming.* receiver keys | receiver.* (see `SPARK_KEYS`) | see `ReceiverConfig` |
| dstream.receiver.unallocated_records_max | receiver.unallocated_records_max | 200000 |
| spark.streaming.backpressure.enabled | backpressure.enabled | false |
| spark.streaming.backpressure.initialRate | backpressure.initial_rate_per_s | none (maxRate, else no limit) |
| spark.streaming.backpressure.pid.proportional | backpressure.proportional | 1.0 |
| spark.streaming.backpressure.pid.integral | backpressure.integral | 0.2 |
| spark.streaming.backpressure.pid.derived | backpressure.derivative | 0.0 |
| spark.streaming.backpressure.pid.minRate | backpressure.min_rate_per_s | 100 |
| dstream.streaming.pendingBatchesMax | scheduler.pending_batches_max | 4 |
| dstream.streaming.generatorEventsMax | scheduler.generator_events_max | 100 |
| dstream.streaming.failedBatchPolicy | scheduler.failed_batch_policy | quarantine |
| dstream.streaming.failedBatchAttemptsMax | scheduler.failed_batch_attempts_max | 3 |
| spark.streaming.stopGracefullyOnShutdown | lifecycle.stop_gracefully_on_shutdown | false |

Bounds between the network and the job (docs/backpressure.md): a receiver's block queue
(`queue_size_max` blocks of at most `block_records_max` records), its records stored but not yet
allocated to a batch (`unallocated_records_max`), the job generator's queued batch ticks
(`generator_events_max`) and the scheduler's batches waiting to run (`pending_batches_max`).

A batch whose job fails (docs/recovery.md, "Poison batches"): with `failedBatchPolicy=quarantine` its
failed jobs run again up to `failedBatchAttemptsMax` attempts in all, then its input goes to
`<checkpoint>/quarantine/<batch_ms>/` and it stops being pending; `fail-stop` keeps it pending for a
restarted driver to run again (which pins WAL cleanup behind it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from dstream.errors import DStreamValueError

SPARK_KEYS = {
    "block_interval_ms": "spark.streaming.blockInterval",
    "max_rate_per_s": "spark.streaming.receiver.maxRate",
    "wal_enabled": "spark.streaming.receiver.writeAheadLog.enable",
    "queue_size_max": "spark.streaming.blockQueueSize",
    "restart_delay_ms": "spark.streaming.receiverRestartDelay",
    "store_timeout_s": "spark.streaming.receiver.blockStoreTimeout",
    "wal_rolling_interval_ms": "spark.streaming.receiver.writeAheadLog.rollingIntervalSecs",
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|secs|m|min)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "sec": 1000, "secs": 1000, "m": 60_000, "min": 60_000}


@dataclass(frozen=True)
class ReceiverConfig:
    """Settings of receivers, their block generators, the receiver WAL and restarts.

    Attributes:
        block_interval_ms: a block is cut every this many ms (Spark's default 200 ms).
        max_rate_per_s: records per second accepted per receiver at most; None for no limit.
        wal_enabled: write every block to the receiver WAL before keeping it (needs a checkpoint dir).
        queue_size_max: blocks waiting to be stored per receiver at most.
        block_records_max: records per block at most (a fuller buffer is cut before the tick).
        restart_delay_ms: first delay before a failed receiver is started again.
        restart_delay_max_ms: the delay doubles after each failure up to this bound.
        restarts_max: consecutive failed starts after which the receiver is given up.
        store_timeout_s: how long `store()` waits for a block to be durable.
        wal_rolling_interval_ms: the receiver WAL starts a new segment this often.
        wal_fsync: "always" or "never" (the WAL's fsync policy).
        wal_batched: group-commit the receiver WAL (many concurrent writers, one fsync).
        unallocated_records_max: records stored by a receiver and not yet allocated to a batch at most;
            storing more waits (the push receiver then delays its acks).
    """

    block_interval_ms: int = 200
    max_rate_per_s: float | None = None
    wal_enabled: bool = False
    queue_size_max: int = 10
    block_records_max: int = 100_000
    restart_delay_ms: int = 2000
    restart_delay_max_ms: int = 10_000  # a receiver is never dark for long: its source is refused meanwhile
    restarts_max: int = 100
    store_timeout_s: float = 30.0
    wal_rolling_interval_ms: int = 60_000
    wal_fsync: str = "always"
    wal_batched: bool = True
    unallocated_records_max: int = 200_000

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any] | None = None, **overrides: Any) -> ReceiverConfig:
        """Build from a configuration mapping (Spark keys or ours) and keyword overrides."""
        values: dict[str, Any] = {}
        conf = dict(conf or {})
        for f in fields(cls):
            for key in (SPARK_KEYS.get(f.name), f"dstream.receiver.{f.name}", f.name):
                if key is not None and key in conf:
                    values[f.name] = _parse(f.name, key, conf[key])
        for name, value in overrides.items():
            if name not in {f.name for f in fields(cls)}:
                raise DStreamValueError(f"unknown receiver setting {name!r}; expected one of {_names()}")
            values[name] = _parse(name, name, value)
        return cls(**values)


def _names() -> list[str]:
    return [f.name for f in fields(ReceiverConfig)]


def _parse(name: str, key: str, value: Any) -> Any:
    if name == "wal_enabled" or name == "wal_batched":
        return _parse_bool(key, value)
    if name == "max_rate_per_s":
        rate = _parse_number(key, value, float("-inf")) if value is not None else None
        return None if rate is None or rate <= 0 else rate  # Spark: 0 or negative means no limit
    if name == "wal_rolling_interval_ms" and key == SPARK_KEYS[name]:
        return int(_parse_number(key, value, 0) * 1000)  # Spark's key is in seconds
    if name.endswith("_ms"):
        return _parse_ms(key, value)
    if name == "wal_fsync":
        if str(value) not in ("always", "never"):
            raise DStreamValueError(f"{key} must be 'always' or 'never', got {value!r}")
        return str(value)
    if name.endswith("_s"):
        return _parse_ms(key, value, default_unit="s") / 1000.0
    if name == "unallocated_records_max":
        return _parse_int(key, value, 1)
    return _parse_int(key, value, 0)


def _parse_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise DStreamValueError(f"{key} must be true or false, got {value!r}")


def _parse_ms(key: str, value: Any, default_unit: str = "ms") -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value * _UNIT_MS[default_unit])
    match = _DURATION.match(str(value))
    if match is None:
        raise DStreamValueError(f"{key} must be a duration such as 200ms or 2s, got {value!r}")
    return int(float(match.group(1)) * _UNIT_MS[match.group(2) or default_unit])


def _parse_number(key: str, value: Any, minimum: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = minimum - 1
    if number < minimum or number != number:  # NaN is never a valid setting
        raise DStreamValueError(f"conf {key}={value!r}: expected a number >= {minimum}")
    return number


def _parse_int(key: str, value: Any, minimum: int) -> int:
    number = _parse_number(key, value, minimum)
    if number != int(number):
        raise DStreamValueError(f"conf {key}={value!r}: expected a whole number >= {minimum}")
    return int(number)


INLINE_CONF_KEY = "dstream.local.inline"
CLOCK_CONF_KEY = "spark.streaming.clock"
PARALLELISM_CONF_KEY = "spark.default.parallelism"
CHECKPOINT_ASYNC_KEY = "dstream.checkpoint.async"
CHECKPOINT_KEEP_KEY = "dstream.checkpoint.keep"
CHECKPOINT_LEASE_TIMEOUT_KEY = "dstream.checkpoint.leaseTimeoutS"
CHECKPOINT_LEASE_WAIT_KEY = "dstream.checkpoint.leaseWaitS"
# Tests of stateful operations on queueStream need a checkpoint directory; recovery still refuses.
CHECKPOINT_ALLOW_QUEUE_STREAM_KEY = "dstream.checkpoint.allowQueueStream"


DASK_DASHBOARD_KEY = "dstream.dask.dashboard"
DASK_WORKER_TIMEOUT_KEY = "dstream.dask.workerTimeout"
DASK_TASK_RETRIES_MAX_KEY = "dstream.dask.taskRetriesMax"
DASK_SHARED_FILESYSTEM_KEY = "dstream.dask.sharedFilesystem"
DASK_LOCALITY_KEY = "dstream.dask.locality"


@dataclass(frozen=True)
class DaskConfig:
    """Settings of the Dask backend (masters ``local-cluster[N]`` and ``dask://``).

    Attributes:
        dashboard: start the embedded cluster's dashboard on 127.0.0.1 (needs bokeh); its address is
            printed and logged.
        worker_timeout_s: an embedded cluster's worker that sends no heartbeat for this long (a paused
            process) is declared dead and restarted, and its tasks run elsewhere. Dask never waits
            less than 10 heartbeats (5 s); a ``dask://`` scheduler keeps its own ``worker-ttl``.
        task_retries_max: times a task whose worker died is submitted again before the job fails.
        shared_filesystem: with ``dask://``, the workers see the driver's local paths (a shared
            mount), so checkpoint directories, file inputs and outputs on local disk are allowed.
        locality: submit each task preferring the workers that hold its input (loose: it runs
            elsewhere when they are gone or busy); false: wherever Dask puts it.
    """

    dashboard: bool = False
    worker_timeout_s: float = 10.0
    task_retries_max: int = 4
    shared_filesystem: bool = False
    locality: bool = True

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> DaskConfig:
        """Read the ``dstream.dask.*`` keys of `conf` (see the module docstring)."""
        d = cls()
        timeout = conf.get(DASK_WORKER_TIMEOUT_KEY)
        timeout_s = (
            d.worker_timeout_s if timeout is None else _parse_ms(DASK_WORKER_TIMEOUT_KEY, timeout, "s") / 1000
        )
        if timeout_s <= 0:
            raise DStreamValueError(f"conf {DASK_WORKER_TIMEOUT_KEY}={timeout!r}: expected a duration > 0")
        return cls(
            dashboard=_parse_bool(DASK_DASHBOARD_KEY, conf.get(DASK_DASHBOARD_KEY, d.dashboard)),
            worker_timeout_s=timeout_s,
            task_retries_max=_parse_int(
                DASK_TASK_RETRIES_MAX_KEY, conf.get(DASK_TASK_RETRIES_MAX_KEY, d.task_retries_max), 0
            ),
            shared_filesystem=_parse_bool(
                DASK_SHARED_FILESYSTEM_KEY, conf.get(DASK_SHARED_FILESYSTEM_KEY, d.shared_filesystem)
            ),
            locality=_parse_bool(DASK_LOCALITY_KEY, conf.get(DASK_LOCALITY_KEY, d.locality)),
        )


@dataclass(frozen=True)
class EngineConfig:
    """Settings of the batch engine.

    Attributes:
        default_parallelism: partitions of a shuffle without an explicit count; None: the backend's.
        local_inline: run a `local` master's tasks one by one in the calling thread (tests).
        manual_clock: drive batches from a `ManualClock` (Spark's `spark.streaming.clock` test setting).
        dask: the Dask backend's settings.
    """

    default_parallelism: int | None = None
    local_inline: bool = False
    manual_clock: bool = False
    dask: DaskConfig = DaskConfig()

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> EngineConfig:
        """Read the engine keys of `conf` (see the module docstring)."""
        parallelism = conf.get(PARALLELISM_CONF_KEY)
        clock = conf.get(CLOCK_CONF_KEY)
        return cls(
            default_parallelism=None
            if parallelism is None
            else _parse_int(PARALLELISM_CONF_KEY, parallelism, 1),
            local_inline=_parse_bool(INLINE_CONF_KEY, conf.get(INLINE_CONF_KEY, False)),
            manual_clock=clock is not None and "manual" in str(clock).lower(),
            dask=DaskConfig.from_conf(conf),
        )


@dataclass(frozen=True)
class CheckpointConfig:
    """Settings of metadata and RDD data checkpoints.

    Attributes:
        asynchronous: write stateful streams' RDD data checkpoints in the background.
        keep_n: metadata checkpoints kept at most.
        lease_timeout_s: a driver lease not renewed for this long may be taken over.
        lease_wait_s: how long a starting driver waits for another driver's lease.
        allow_queue_stream: accept queueStream with a checkpoint directory (tests; never recoverable).
    """

    asynchronous: bool = True
    keep_n: int = 10
    lease_timeout_s: float = 30.0
    lease_wait_s: float = 0.0
    allow_queue_stream: bool = False

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> CheckpointConfig:
        """Read the checkpoint keys of `conf` (see the module docstring)."""
        default = cls()

        def get(key: str, fallback: Any) -> Any:
            return conf.get(key, fallback)

        return cls(
            asynchronous=_parse_bool(CHECKPOINT_ASYNC_KEY, get(CHECKPOINT_ASYNC_KEY, default.asynchronous)),
            keep_n=_parse_int(CHECKPOINT_KEEP_KEY, get(CHECKPOINT_KEEP_KEY, default.keep_n), 1),
            lease_timeout_s=_parse_number(
                CHECKPOINT_LEASE_TIMEOUT_KEY, get(CHECKPOINT_LEASE_TIMEOUT_KEY, default.lease_timeout_s), 0.1
            ),
            lease_wait_s=_parse_number(
                CHECKPOINT_LEASE_WAIT_KEY, get(CHECKPOINT_LEASE_WAIT_KEY, default.lease_wait_s), 0.0
            ),
            allow_queue_stream=_parse_bool(
                CHECKPOINT_ALLOW_QUEUE_STREAM_KEY,
                get(CHECKPOINT_ALLOW_QUEUE_STREAM_KEY, default.allow_queue_stream),
            ),
        )


BACKPRESSURE_ENABLED_KEY = "spark.streaming.backpressure.enabled"
BACKPRESSURE_INITIAL_RATE_KEY = "spark.streaming.backpressure.initialRate"
PID_PROPORTIONAL_KEY = "spark.streaming.backpressure.pid.proportional"
PID_INTEGRAL_KEY = "spark.streaming.backpressure.pid.integral"
PID_DERIVATIVE_KEY = "spark.streaming.backpressure.pid.derived"
PID_MIN_RATE_KEY = "spark.streaming.backpressure.pid.minRate"
PENDING_BATCHES_MAX_KEY = "dstream.streaming.pendingBatchesMax"
GENERATOR_EVENTS_MAX_KEY = "dstream.streaming.generatorEventsMax"


@dataclass(frozen=True)
class BackpressureConfig:
    """Spark's backpressure: a PID estimator sets each receiver's rate from completed batches.

    Attributes:
        enabled: estimate a rate after each completed batch and make it the receivers' limit.
        initial_rate_per_s: the receivers' limit before the first estimate (None: maxRate, or none).
        proportional: the PID's weight of the current error (Spark's default 1.0).
        integral: the weight of the accumulated error, read from the scheduling delay (0.2).
        derivative: the weight of the error's rate of change (0.0).
        min_rate_per_s: the estimate never goes below this (100).
    """

    enabled: bool = False
    initial_rate_per_s: float | None = None
    proportional: float = 1.0
    integral: float = 0.2
    derivative: float = 0.0
    min_rate_per_s: float = 100.0

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> BackpressureConfig:
        """Read the backpressure keys of `conf` (see the module docstring)."""
        d = cls()
        initial = conf.get(BACKPRESSURE_INITIAL_RATE_KEY)
        initial_rate = None if initial is None else _parse_number(BACKPRESSURE_INITIAL_RATE_KEY, initial, 0.0)
        return cls(
            enabled=_parse_bool(BACKPRESSURE_ENABLED_KEY, conf.get(BACKPRESSURE_ENABLED_KEY, d.enabled)),
            initial_rate_per_s=initial_rate or None,  # Spark: 0 means no initial rate
            proportional=_parse_number(
                PID_PROPORTIONAL_KEY, conf.get(PID_PROPORTIONAL_KEY, d.proportional), 0.0
            ),
            integral=_parse_number(PID_INTEGRAL_KEY, conf.get(PID_INTEGRAL_KEY, d.integral), 0.0),
            derivative=_parse_number(PID_DERIVATIVE_KEY, conf.get(PID_DERIVATIVE_KEY, d.derivative), 0.0),
            min_rate_per_s=_parse_positive(PID_MIN_RATE_KEY, conf.get(PID_MIN_RATE_KEY, d.min_rate_per_s)),
        )


def _parse_positive(key: str, value: Any) -> float:
    number = _parse_number(key, value, 0.0)
    if number <= 0 or number == float("inf"):
        raise DStreamValueError(f"conf {key}={value!r}: expected a finite number > 0")
    return number


FAILED_BATCH_POLICY_KEY = "dstream.streaming.failedBatchPolicy"
FAILED_BATCH_ATTEMPTS_MAX_KEY = "dstream.streaming.failedBatchAttemptsMax"
QUARANTINE, FAIL_STOP = "quarantine", "fail-stop"
FAILED_BATCH_POLICIES = (QUARANTINE, FAIL_STOP)


@dataclass(frozen=True)
class SchedulerConfig:
    """Bounds of the job generator and the job scheduler.

    Attributes:
        pending_batches_max: batches submitted and waiting to run at most; generating the next waits,
            so allocation pauses and the receivers' unallocated bound slows the producers.
        generator_events_max: batch ticks queued for the generator's event loop at most; the timer
            waits (it generates the missed batch times once there is room, none is skipped).
        failed_batch_policy: "quarantine" (retry, then quarantine the batch's input and move on) or
            "fail-stop" (the failed batch stays pending, as in Spark).
        failed_batch_attempts_max: runs of a failed job at most (the first included) before the batch
            is quarantined.
    """

    pending_batches_max: int = 4
    generator_events_max: int = 100
    failed_batch_policy: str = QUARANTINE
    failed_batch_attempts_max: int = 3

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> SchedulerConfig:
        """Read the scheduler keys of `conf` (see the module docstring)."""
        d = cls()
        return cls(
            pending_batches_max=_parse_int(
                PENDING_BATCHES_MAX_KEY, conf.get(PENDING_BATCHES_MAX_KEY, d.pending_batches_max), 1
            ),
            generator_events_max=_parse_int(
                GENERATOR_EVENTS_MAX_KEY, conf.get(GENERATOR_EVENTS_MAX_KEY, d.generator_events_max), 1
            ),
            failed_batch_policy=_parse_policy(conf.get(FAILED_BATCH_POLICY_KEY, d.failed_batch_policy)),
            failed_batch_attempts_max=_parse_int(
                FAILED_BATCH_ATTEMPTS_MAX_KEY,
                conf.get(FAILED_BATCH_ATTEMPTS_MAX_KEY, d.failed_batch_attempts_max),
                1,
            ),
        )


def _parse_policy(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in FAILED_BATCH_POLICIES:
        raise DStreamValueError(
            f"conf {FAILED_BATCH_POLICY_KEY}={value!r}: expected one of {', '.join(FAILED_BATCH_POLICIES)}"
        )
    return text


STOP_GRACEFULLY_ON_SHUTDOWN_KEY = "spark.streaming.stopGracefullyOnShutdown"


@dataclass(frozen=True)
class LifecycleConfig:
    """How a streaming application stops.

    Attributes:
        stop_gracefully_on_shutdown: on SIGTERM, stop gracefully (bounded by the graceful-stop timeout)
            and exit with status 0, as Spark's shutdown hook does; otherwise SIGTERM acts as before.
    """

    stop_gracefully_on_shutdown: bool = False

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> LifecycleConfig:
        """Read the lifecycle keys of `conf` (see the module docstring)."""
        value = conf.get(STOP_GRACEFULLY_ON_SHUTDOWN_KEY, cls.stop_gracefully_on_shutdown)
        return cls(stop_gracefully_on_shutdown=_parse_bool(STOP_GRACEFULLY_ON_SHUTDOWN_KEY, value))


@dataclass(frozen=True)
class StreamingConfig:
    """What a streaming application reads from its configuration, parsed once when it starts.

    The engine section is parsed by the Context when it is created (`Context.engine_config`).
    """

    receiver: ReceiverConfig = ReceiverConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    backpressure: BackpressureConfig = BackpressureConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    lifecycle: LifecycleConfig = LifecycleConfig()

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any] | None = None) -> StreamingConfig:
        """Parse a configuration mapping (Spark keys or ours).

        Raises:
            DStreamValueError: a value is malformed; the message names its key and what was expected.
        """
        values = dict(conf or {})
        return cls(
            receiver=ReceiverConfig.from_conf(values),
            checkpoint=CheckpointConfig.from_conf(values),
            backpressure=BackpressureConfig.from_conf(values),
            scheduler=SchedulerConfig.from_conf(values),
            lifecycle=LifecycleConfig.from_conf(values),
        )

"""Receiver settings, read from our own names or from Spark's configuration keys for the same settings.

Each setting has one snake_case name (`ReceiverConfig` field, also accepted as `dstream.receiver.<name>`)
and, where Spark has one, Spark's key. Spark's duration strings ("200ms", "2s") are accepted for times.
When both names are given, ours wins.
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
    """

    block_interval_ms: int = 200
    max_rate_per_s: float | None = None
    wal_enabled: bool = False
    queue_size_max: int = 10
    block_records_max: int = 100_000
    restart_delay_ms: int = 2000
    restart_delay_max_ms: int = 60_000
    restarts_max: int = 100
    store_timeout_s: float = 30.0
    wal_rolling_interval_ms: int = 60_000
    wal_fsync: str = "always"
    wal_batched: bool = True

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
        rate = float(value) if value is not None else None
        return None if rate is None or rate <= 0 else rate  # Spark: 0 or negative means no limit
    if name == "wal_rolling_interval_ms" and key == SPARK_KEYS[name]:
        return int(float(value) * 1000)  # Spark's key is in seconds
    if name.endswith("_ms"):
        return _parse_ms(key, value)
    if name == "wal_fsync":
        return str(value)
    if name.endswith("_s"):
        return _parse_ms(key, value, default_unit="s") / 1000.0
    return int(value)


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

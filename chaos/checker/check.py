"""The exactly-once checker: a pure function of a run's history and its committed output.

Jepsen's method with Flink's per-key sequence check and Kafka Streams' recomputation of aggregates. It
reads no file and no clock: the runner reads the history and the committed output and passes them in,
so the same verdict can be recomputed offline from a saved run.

Error types (each {"count", "examples": up to 8}; any count above 0 makes the run invalid):

- lost, duplicated, unexpected, uncommitted_visible: per record (`chaos.checker.records`);
- key_gaps, key_repeats, key_reorders: per key (`chaos.checker.sequences`);
- aggregate_mismatch: rows that differ from the model's recomputation (`chaos.checker.aggregates`);
- liveness: faults not recovered within the bound, or no final drain (`chaos.checker.liveness`);
- zombie_publish, zombie_not_stopped: a driver paused past its lease committed after it woke, or did
  not stop on its own (`chaos.checker.zombies`).

Reported, never errors: "quarantined" (records of quarantined batches) and "recovery_s" (recovery time
per fault and its p50/p99/max). In "records", "committed" counts distinct committed ids (an id
committed twice counts once; the second is in "duplicated"), and "recovered_info" counts sends of
unknown outcome that were committed once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chaos.checker.aggregates import check_aggregates
from chaos.checker.findings import Findings
from chaos.checker.liveness import check_liveness, recovery_stats
from chaos.checker.model import CommittedOutput
from chaos.checker.records import check_records
from chaos.checker.sends import sends_of
from chaos.checker.sequences import check_sequences
from chaos.checker.zombies import check_zombies

ERROR_TYPES = (
    "lost",
    "duplicated",
    "unexpected",
    "key_gaps",
    "key_repeats",
    "key_reorders",
    "aggregate_mismatch",
    "uncommitted_visible",
    "liveness",
    "zombie_publish",
    "zombie_not_stopped",
)


def check(
    history_events: Sequence[Mapping[str, Any]],
    header: Mapping[str, Any],
    committed: CommittedOutput,
    *,
    recovery_bound_s: float | None = None,
) -> dict[str, Any]:
    """Judge one run; returns the JSON-able verdict (see the module docstring for its keys).

    Args:
        history_events: the history's events (the header excluded), in history order.
        header: the history's header (its "run" names the pipeline and the window).
        committed: what the sink committed, read back by the runner.
        recovery_bound_s: the liveness bound; default the header's run "recovery_bound_s".
    """
    run = header["run"]
    bound = float(run["recovery_bound_s"] if recovery_bound_s is None else recovery_bound_s)
    sends = sends_of(history_events)
    records = check_records(sends, committed)
    sequences = check_sequences(sends, committed)
    aggregates = check_aggregates(
        run["pipeline"],
        sends,
        committed,
        batch_ms=run["batch_ms"],
        window_ms=run.get("window_ms"),
        slide_ms=run.get("slide_ms"),
    )
    live = check_liveness(history_events, bound)
    zombies = check_zombies(history_events, committed)
    errors: dict[str, Findings] = {
        "lost": records.lost,
        "duplicated": records.duplicated,
        "unexpected": records.unexpected,
        "key_gaps": sequences.gaps,
        "key_repeats": sequences.repeats,
        "key_reorders": sequences.reorders,
        "aggregate_mismatch": aggregates,
        "uncommitted_visible": records.uncommitted_visible,
        "liveness": live.liveness,
        "zombie_publish": zombies.publish,
        "zombie_not_stopped": zombies.not_stopped,
    }
    error_types = [name for name in ERROR_TYPES if errors[name].count]
    return {
        "valid": not error_types,
        "error_types": error_types,
        "records": records.counts,
        **{name: errors[name].to_json() for name in ERROR_TYPES},
        "quarantined": records.quarantined.to_json(),
        "recovery_s": recovery_stats(live.faults),
    }

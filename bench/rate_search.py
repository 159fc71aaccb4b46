"""The step of the benchmarks' sustainable-rate searches (bench/wordcount.py, bench/e2e_sources.py)."""

from __future__ import annotations


def next_rate(
    rate: float, ms: float, best: float, over: float, batch_s: float, ceiling: float
) -> float | None:
    """The rate to probe after `rate` took a median `ms` per batch of `batch_s`, or None when done.

    Args:
        rate: the rate just probed (lines/s).
        ms: its median batch processing time.
        best: the highest rate that held so far (0: none).
        over: the lowest rate that did not hold (infinity: none).
        batch_s: the batch interval.
        ceiling: the highest rate the caller can offer.

    After a probe that held it aims at 95 % of the interval from that probe (processing time is close
    to linear in the rate below saturation), bisecting the bracket (best, over) when the aim passes
    `over`; after one that did not, it bisects the bracket (aims only while nothing held): past
    saturation processing time grows faster than linearly, so an aim from an overloaded probe falls
    short, and the aim alone jumped back and forth over the limit without closing in.
    Done when the probe held and the aim is at most 5 % above it, or the bracket is within 5 %.
    """
    held = ms < batch_s * 1000
    target = rate * 0.95 * batch_s * 1000 / max(ms, 1.0)
    if held and target <= rate * 1.05:
        return None  # it held, and the aim is at most a step above it: this is the limit
    if best and over - best <= 0.05 * best:
        return None
    if (not held and best) or target >= over:
        target = (best + over) / 2
    return float(max(1000, min(int(target), ceiling)))

"""The drill's timeline plot (timeline.png): throughput and end-to-end lag over a run, faults shaded.

Series, from the history (and the committed output, for what was committed when):

- acknowledged records per second: "ok" sends, by acknowledgement time, in one-second bins;
- committed records per second: each committed batch's records, at the first "batch-completed" event
  of that batch (without the committed output: batches completed per second instead);
- end-to-end lag: per committed batch, the time from a record's acknowledgement to its batch's
  completion, median and maximum over the batch's records, at the batch's completion time.

Faults: a red band from "fault-start" to "fault-end" (widened to be visible: a kill is instantaneous),
an orange band while the pipeline recovers, and a green mark with the recovery time when the first
batch completes after the fault. The series are computed by pure functions (`timeline_series`);
`draw_timeline` is the matplotlib shell: an Agg canvas on a bare Figure (no pyplot, so no display, no
global state, and safe from any thread).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from chaos.checker.liveness import Fault, faults_of
from chaos.checker.model import CommittedOutput

BIN_S = 1.0
AXIS_WIDTH_PX = 1100  # the plot's axes at 12 in x 100 dpi, less the margins


@dataclass
class TimelineSeries:
    """What the plot shows, as plain numbers."""

    bins_s: list[float] = field(default_factory=list)  # left edge of each one-second bin
    acknowledged_per_s: list[float] = field(default_factory=list)
    committed_per_s: list[float] = field(default_factory=list)
    committed_label: str = "committed"
    lag_t_s: list[float] = field(default_factory=list)
    lag_median_s: list[float] = field(default_factory=list)
    lag_max_s: list[float] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    end_s: float = 0.0


def timeline_series(
    events: Sequence[Mapping[str, Any]], committed: CommittedOutput | None = None
) -> TimelineSeries:
    """The plot's series from a history's events and, if given, the committed output (pure)."""
    out = TimelineSeries(faults=faults_of(events))
    out.end_s = max((e["t"] for e in events), default=0.0)
    n_bins = max(1, math.ceil(out.end_s / BIN_S))
    out.bins_s = [i * BIN_S for i in range(n_bins)]
    acked: dict[str, float] = {}
    completed: dict[int, float] = {}  # batch ms -> first completion t
    for e in events:
        if e["f"] == "send" and e.get("type") == "ok":
            acked[e["rid"]] = e["t"]
        elif e["f"] == "batch-completed" and "batch" in e:
            completed.setdefault(e["batch"], e["t"])
    out.acknowledged_per_s = _per_bin(list(acked.values()), n_bins)
    if committed is None:
        out.committed_label = "batches completed"
        out.committed_per_s = _per_bin(list(completed.values()), n_bins)
        return out
    commit_times: list[float] = []
    for batch_ms in sorted(committed.batches):
        done = completed.get(batch_ms)
        if done is None:
            continue
        consumed = committed.batches[batch_ms].consumed
        commit_times += [done] * len(consumed)
        lags = [done - acked[rid] for rid in consumed if rid in acked]
        if lags:
            out.lag_t_s.append(done)
            out.lag_median_s.append(statistics.median(lags))
            out.lag_max_s.append(max(lags))
    out.committed_per_s = _per_bin(commit_times, n_bins)
    return out


def _per_bin(times: Sequence[float], n_bins: int) -> list[float]:
    counts = [0.0] * n_bins
    for t in times:
        counts[min(n_bins - 1, max(0, int(t // BIN_S)))] += 1 / BIN_S
    return counts


def draw_timeline(series: TimelineSeries, path: str | Path, *, title: str = "dstream drill") -> Path:
    """Draw `series` into a PNG at `path`; returns the path."""
    fig = Figure(figsize=(12, 6.5), layout="constrained")
    FigureCanvasAgg(fig)
    rate_ax, lag_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    centers = [b + BIN_S / 2 for b in series.bins_s]
    rate_ax.plot(centers, series.acknowledged_per_s, color="#1f77b4", lw=1.6, label="acknowledged")
    rate_ax.plot(centers, series.committed_per_s, color="#2ca02c", lw=1.6, label=series.committed_label)
    rate_ax.set_ylabel("records / s")
    # Headroom above the curves for the fault labels.
    rate_ax.set_ylim(bottom=0, top=max([1.0, *series.acknowledged_per_s, *series.committed_per_s]) * 1.45)
    if series.lag_t_s:
        dots = {"marker": "o", "markersize": 2.5}
        lag_ax.plot(series.lag_t_s, series.lag_max_s, color="#d62728", lw=1.0, label="max", **dots)
        lag_ax.plot(series.lag_t_s, series.lag_median_s, color="#9467bd", lw=1.4, label="median", **dots)
        lag_ax.set_ylim(bottom=0, top=max(series.lag_max_s) * 1.15 or 1.0)
    else:
        lag_ax.text(
            0.5,
            0.5,
            "no committed output to measure lag",
            ha="center",
            va="center",
            transform=lag_ax.transAxes,
            color="gray",
        )
    lag_ax.set_ylabel("end-to-end lag (s)")
    lag_ax.set_xlabel("seconds since the run started")
    lag_ax.set_xlim(0, max(series.end_s, 1.0))
    for ax in (rate_ax, lag_ax):
        ax.grid(True, alpha=0.3)
        _shade_faults(ax, series.faults, series.end_s)
    if _label_faults(rate_ax, series.faults, series.end_s):
        title += "  (faults numbered as in the report)"
    # Legends sit above their axes, where they can never hide a curve or a fault.
    above = {"loc": "lower right", "bbox_to_anchor": (1.0, 1.0), "frameon": False, "fontsize": 9}
    handles = rate_ax.get_legend_handles_labels()[0][:2] + _fault_handles()
    rate_ax.legend(handles=handles, ncol=len(handles), **above)
    if series.lag_t_s:
        lag_ax.legend(ncol=2, **above)
    rate_ax.set_title(title, loc="left")
    fig.savefig(path, dpi=100)
    return Path(path)


def _fault_end(fault: Fault, end_s: float) -> float:
    return fault.ended_s if fault.ended_s is not None else end_s


def _shade_faults(ax: Any, faults: Sequence[Fault], end_s: float) -> None:
    min_width = max(end_s, 1.0) * 0.004  # a kill lasts no time; keep its band visible
    for fault in faults:
        ended = max(_fault_end(fault, end_s), fault.at_s + min_width)
        ax.axvspan(fault.at_s, ended, color="#d62728", alpha=0.25, lw=0)
        if fault.recovered_s is not None:
            back = fault.at_s + fault.recovered_s
            if back > ended:
                ax.axvspan(ended, back, color="#ff7f0e", alpha=0.12, lw=0)
            ax.axvline(back, color="#2ca02c", ls="--", lw=1.0)


def _label_text(fault: Fault) -> str:
    back = "never recovered" if fault.recovered_s is None else f"back in {fault.recovered_s:.1f} s"
    return f"{fault.kind}\n{back}"


def _label_faults(ax: Any, faults: Sequence[Fault], end_s: float) -> bool:
    """Label each band above the curves; returns True if crowding forced numbers instead of names.

    If the faults are further apart than the widest label they get one row of labels; at half that,
    two alternating rows; closer, only their numbers (the report's fault table lists them by number).
    A label that would run past the right edge is drawn to the left of its band.
    """
    ordered = sorted(faults, key=lambda f: f.at_s)
    texts = [_label_text(f) for f in ordered]
    chars = max((len(line) for text in texts for line in text.split("\n")), default=0)
    span = max(end_s, 1.0)
    label_width = span * (chars * 5.0 + 10) / AXIS_WIDTH_PX
    gap = min((b.at_s - a.at_s for a, b in itertools.pairwise(ordered)), default=label_width)
    rows = 1 if gap >= label_width else 2
    numbered = gap < label_width / 2
    if numbered:
        texts = [str(n) for n in range(1, len(ordered) + 1)]
        label_width = span * 20 / AXIS_WIDTH_PX
    top = ax.get_ylim()[1]
    for n, (fault, text) in enumerate(zip(ordered, texts, strict=True)):
        leftward = fault.at_s + label_width > span
        ax.annotate(
            text,
            xy=(fault.at_s, top * (0.98 - 0.12 * (n % rows))),
            xytext=(-2 if leftward else 2, 0),
            textcoords="offset points",
            ha="right" if leftward else "left",
            va="top",
            fontsize=7 if numbered else 8,
            color="#7f0000",
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8},
        )
    return numbered


def _fault_handles() -> list[Any]:
    return [
        Patch(color="#d62728", alpha=0.25, label="fault"),
        Patch(color="#ff7f0e", alpha=0.12, label="recovering"),
    ]

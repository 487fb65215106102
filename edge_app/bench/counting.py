"""`edge-app bench counting`: counting accuracy over hours of simulated production.

Each scenario (`sim.scenarios.LINE_PRESETS`, the default detector error model) is generated once and
its per-frame tray counts (score >= 0.5, box centre inside the scenario's ROI) go through
`BinCounter` and, side by side, through `PlainBinCounter` (the article's rule taken literally).

Per scenario and counter it reports the counted total, the absolute error of the total in percent of
the true total, and the share of true bins counted exactly. A true bin is *counted exactly* when the
counted bin overlapping it longest in time (a) also overlaps no other true bin longer and (b) has
the same tray count: a bin split in two, merged with its neighbour or miscounted is not exact.

The scenario seeds are fixed (``BENCH_SEED``); the counter's defaults were tuned on other seeds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from edge_app.config import CounterParams
from edge_app.counter import BinCounter, PlainBinCounter
from edge_app.events import BinCompleted
from edge_app.roi import Roi

BENCH_SEED = 20261123
FULL_HOURS_PER_LINE = 2.0
SHORT_MINUTES_PER_LINE = 6.0
SCORE_THRESHOLD = 0.5
COUNTERS = {"robust": BinCounter, "plain": PlainBinCounter}


@dataclass
class CounterResult:
    total: int
    bins: list[tuple[float, float, int]]  # (start_t, end_t, trays)
    timeline: list[tuple[float, int]] = field(default_factory=list)  # (t, global + local)
    exact_bins: int = 0


@dataclass
class ScenarioResult:
    line: str
    hours: float
    true_total: int
    true_bins: list[dict]
    true_timeline: list[tuple[float, int]]
    counters: dict[str, CounterResult]
    frames: int
    raw_counts: np.ndarray | None = None

    def error_percent(self, name: str) -> float:
        return 100.0 * abs(self.counters[name].total - self.true_total) / max(self.true_total, 1)

    def exact_percent(self, name: str) -> float:
        return 100.0 * self.counters[name].exact_bins / max(len(self.true_bins), 1)


def exact_bins(true_bins: list[dict], counted: list[tuple[float, float, int]]) -> int:
    """How many true bins were counted exactly (mutual best time-overlap match, same tray count)."""
    if not true_bins or not counted:
        return 0
    ts = np.array([b["start_t"] for b in true_bins])
    te = np.array([b["end_t"] for b in true_bins])
    cs = np.array([c[0] for c in counted])
    ce = np.array([c[1] for c in counted])
    overlap = np.minimum(te[:, None], ce[None, :]) - np.maximum(ts[:, None], cs[None, :])
    overlap = np.maximum(overlap, 0.0)
    best_counted = overlap.argmax(axis=1)
    best_true = overlap.argmax(axis=0)
    n = 0
    for i, j in enumerate(best_counted):
        if overlap[i, j] > 0 and best_true[j] == i and counted[j][2] == true_bins[i]["trays"]:
            n += 1
    return n


def run_scenario(scenario, params: CounterParams | None = None, keep_raw: bool = False,  # noqa: ANN001
                 timeline_step_s: float = 10.0) -> ScenarioResult:
    """Generate one scenario and count it with both counters."""
    from sim.scenarios import ScenarioRun

    run = ScenarioRun(scenario)
    roi = Roi(scenario.roi)
    params = params or CounterParams()
    spec = scenario.spec
    counters = {name: cls(spec.line, spec.line, params) for name, cls in COUNTERS.items()}
    results = {name: CounterResult(0, []) for name in COUNTERS}
    raw: list[tuple[float, int]] = []
    next_sample = 0.0
    frames = 0
    for fr in run.frames():
        keep = fr.scores >= SCORE_THRESHOLD
        boxes = fr.boxes[keep]
        centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
        n = int(roi.contains(centres).sum()) if len(boxes) else 0
        frames += 1
        if keep_raw:
            raw.append((fr.t, n))
        for name, counter in counters.items():
            _collect(counter.update(fr.frame, fr.t, n), results[name])
        if fr.t >= next_sample:
            for name, counter in counters.items():
                results[name].timeline.append((fr.t, counter.global_count + counter.local))
            next_sample = fr.t + timeline_step_s
    truth = run.truth
    end_t = scenario.duration_s
    for name, counter in counters.items():
        _collect(counter.finish(end_t), results[name])
        results[name].total = counter.global_count
        results[name].timeline.append((end_t, counter.global_count))
        results[name].exact_bins = exact_bins(truth["bins"], results[name].bins)
    placements = np.sort(np.concatenate([b.placements for b in run.bins]))
    sample_t = np.arange(0.0, end_t + timeline_step_s, timeline_step_s)
    true_timeline = list(zip(sample_t.tolist(), np.searchsorted(placements, sample_t, side="right").tolist(),
                             strict=True))
    return ScenarioResult(spec.line, end_t / 3600.0, truth["total_trays"], truth["bins"], true_timeline, results,
                          frames, np.array(raw) if keep_raw else None)


def _collect(events: list, result: CounterResult) -> None:
    for e in events:
        if isinstance(e, BinCompleted):
            result.bins.append((e.start_t, e.end_t, e.trays))


def bench_scenarios(short: bool = False, seed: int = BENCH_SEED, hours_per_line: float | None = None,
                    error_scale: float = 1.0) -> list:
    """The fixed benchmark set: every line preset, default error model, seeds derived from ``seed``."""
    from sim.error_model import ErrorModel
    from sim.scenarios import LINE_PRESETS, Scenario

    duration = (hours_per_line * 3600.0 if hours_per_line is not None
                else SHORT_MINUTES_PER_LINE * 60.0 if short else FULL_HOURS_PER_LINE * 3600.0)
    model = ErrorModel() if error_scale == 1.0 else ErrorModel().scaled(error_scale)
    return [Scenario(spec, duration_s=duration, error_model=model, seed=seed + i)
            for i, spec in enumerate(LINE_PRESETS.values())]


def format_table(results: list[ScenarioResult]) -> str:
    head = (f"{'scenario':<9} {'hours':>5} {'bins':>5} {'true':>6} | {'robust':>6} {'err %':>6} {'exact %':>7} | "
            f"{'plain':>6} {'err %':>6} {'exact %':>7}")
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.line:<9} {r.hours:>5.2f} {len(r.true_bins):>5} {r.true_total:>6} | "
            f"{r.counters['robust'].total:>6} {r.error_percent('robust'):>6.2f} {r.exact_percent('robust'):>7.1f} | "
            f"{r.counters['plain'].total:>6} {r.error_percent('plain'):>6.2f} {r.exact_percent('plain'):>7.1f}"
        )
    true_total = sum(r.true_total for r in results)
    n_bins = sum(len(r.true_bins) for r in results)
    cells = []
    for name in COUNTERS:
        total = sum(r.counters[name].total for r in results)
        abs_err = sum(abs(r.counters[name].total - r.true_total) for r in results)
        exact = sum(r.counters[name].exact_bins for r in results)
        cells.append(f"{total:>6} {100.0 * abs_err / max(true_total, 1):>6.2f} {100.0 * exact / max(n_bins, 1):>7.1f}")
    hours = sum(r.hours for r in results)
    lines.append("-" * len(head))
    lines.append(f"{'all':<9} {hours:>5.2f} {n_bins:>5} {true_total:>6} | {cells[0]} | {cells[1]}")
    return "\n".join(lines)


def overall(results: list[ScenarioResult], name: str) -> tuple[float, float]:
    """(sum of per-scenario absolute errors in % of all true trays, % of all true bins exact)."""
    true_total = sum(r.true_total for r in results)
    abs_err = sum(abs(r.counters[name].total - r.true_total) for r in results)
    exact = sum(r.counters[name].exact_bins for r in results)
    return 100.0 * abs_err / max(true_total, 1), 100.0 * exact / max(sum(len(r.true_bins) for r in results), 1)


def plot_result(result: ScenarioResult, path: Path) -> None:
    """PNG: true vs counted trays over time (both counters), and a zoom on the raw/smoothed signal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(11, 7.5), gridspec_kw={"height_ratios": [3, 2]})
    ax = axes[0]
    tt, tv = zip(*result.true_timeline, strict=True)
    ax.plot(np.array(tt) / 60, tv, color="black", lw=2.2, label=f"true ({result.true_total})")
    styles = {"robust": ("tab:green", "-"), "plain": ("tab:red", "--")}
    for name, res in result.counters.items():
        t, v = zip(*res.timeline, strict=True)
        color, ls = styles[name]
        label = f"{'BinCounter' if name == 'robust' else 'plain rule'} ({res.total}, " \
                f"err {result.error_percent(name):.2f} %)"
        ax.plot(np.array(t) / 60, v, color=color, ls=ls, lw=1.4, label=label)
    ax.set_ylim(0, result.true_total * 1.15)
    plain_total = result.counters["plain"].total
    if plain_total > result.true_total * 1.15:
        ax.text(0.99, 0.04, f"plain rule leaves the chart: {plain_total} trays counted", transform=ax.transAxes,
                ha="right", color="tab:red")
    ax.set_xlabel("stream time (min)")
    ax.set_ylabel("trays counted so far (global + local)")
    ax.set_title(f"{result.line}: {result.hours:.1f} h simulated, default detector error model")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    ax = axes[1]
    if result.raw_counts is not None and len(result.raw_counts):
        raw = result.raw_counts
        t0 = result.true_bins[min(2, len(result.true_bins) - 1)]["start_t"] if result.true_bins else 0.0
        sel = (raw[:, 0] >= t0) & (raw[:, 0] <= t0 + 600)
        ax.plot(raw[sel, 0] / 60, raw[sel, 1], color="tab:gray", lw=0.6, label="trays detected per frame")
        for b in result.true_bins:
            if t0 <= b["end_t"] <= t0 + 600:
                ax.axvline(b["end_t"] / 60, color="black", lw=0.8, ls=":")
                ax.plot([b["end_t"] / 60], [b["trays"]], "o", color="black", ms=5)
        for _start, e, trays in result.counters["robust"].bins:
            if t0 <= e <= t0 + 600:
                ax.plot([e / 60], [trays], "v", color="tab:green", ms=8)
        ax.set_xlabel("stream time (min); dotted line and dot: true bin swap and its trays; "
                      "triangle: bin completed by BinCounter")
        ax.set_ylabel("trays")
        ax.set_title("10-minute zoom: raw per-frame detections")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def counting(
    short: Annotated[bool, typer.Option("--short", help="6 simulated minutes per line (CI)")] = False,
    hours_per_line: Annotated[float | None, typer.Option(help="Override the simulated hours per line")] = None,
    seed: Annotated[int, typer.Option(help="Base seed of the scenario set")] = BENCH_SEED,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG of count over time (first line)")] = None,
    error_scale: Annotated[float, typer.Option(help="Scale the detector's miss/false-positive rates (1: default)")
                           ] = 1.0,
) -> None:
    """Counting accuracy of BinCounter vs the plain article rule on simulated production (4 lines)."""
    started = time.perf_counter()
    results = []
    for i, scenario in enumerate(bench_scenarios(short, seed, hours_per_line, error_scale)):
        results.append(run_scenario(scenario, keep_raw=plot is not None and i == 0))
    print(format_table(results))
    for name in COUNTERS:
        err, exact = overall(results, name)
        print(f"{name}: total error {err:.2f} % (target <= 0.5 %), bins exact {exact:.1f} % (target >= 98 %)")
    frames = sum(r.frames for r in results)
    print(f"{frames} frames, {sum(r.hours for r in results):.2f} simulated hours in "
          f"{time.perf_counter() - started:.1f} s (scenario seed {seed}, error scale {error_scale:g})")
    if plot is not None:
        plot_result(results[0], plot)
        print(f"plot: {plot}")

"""Detection-level scenarios: hours of simulated production as replay detections, with exact truth.

No pixels are rendered. A scenario is a *process* (when each bin arrives, when each tray is placed,
when hands cover the bin, when the camera is down) plus a *detector* (`sim.error_model`) that turns
the trays visible in each frame into boxes and scores. Counting can then be evaluated over hours of
production in seconds.

The process of one line, bin after bin:

1. the new, empty bin slides in over the full one (``slide_s``): its edge sweeps across the old bin
   and the old trays disappear progressively (the "brief overlap");
2. it stays empty a moment (``empty_s``), then the worker places trays one by one, every
   ``tray_interval_s`` times a per-bin pace (slow, normal or fast fill); each placement brings a
   hand and arm over the target slot for ``placement_hand_s``;
3. once full (``trays_per_bin``) it sits for ``full_dwell_s``, then the next bin slides in.

Independently, hands or the worker's body cover a random part of the bin (occlusion bursts of
``occlusion_s``), and the camera can be down for ``outage_s`` (no frames at all).

Truth: a bin's ``start_t`` is when it started sliding in (0 for the first), its ``end_t`` when the
next bin started sliding over it (or the end of the scenario); ``trays`` is how many trays were
placed in it. The last, partly filled bin is included when it holds trays (a counter's ``finish``
closes it too).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from edge_app.fileio import atomic_write_text
from sim.error_model import ErrorModel, TrayDetectorSim

Range = tuple[float, float]


@dataclass(frozen=True)
class LineSpec:
    """How one packaging line works (camera, bins, worker), independent of the detector's errors."""

    line: str = "line-1"
    fps: float = 10.0
    frame_size: tuple[int, int] = (1280, 720)
    bin_rect: tuple[float, float, float, float] = (420.0, 170.0, 880.0, 570.0)
    """The top bin's inside, in frame pixels (x1, y1, x2, y2)."""
    grid: tuple[int, int] = (4, 6)
    """Tray slots in a bin (rows, cols); ``trays_per_bin`` must fit."""
    trays_per_bin: tuple[int, int] = (22, 24)
    """Uniform, inclusive."""
    tray_interval_s: Range = (3.0, 6.0)
    """Time between two trays at normal pace."""
    pace: tuple[float, float, float] = (0.6, 1.0, 2.0)
    """Per-bin pace factors (fast, normal, slow) applied to ``tray_interval_s``."""
    pace_weights: tuple[float, float, float] = (0.25, 0.5, 0.25)
    full_dwell_s: Range = (3.0, 12.0)
    """A full bin waits while the worker fetches the next one."""
    empty_s: Range = (0.3, 6.0)
    slide_s: Range = (0.5, 2.0)
    placement_hand_s: Range = (0.4, 1.2)
    occlusions_per_min: float = 0.6
    occlusion_s: Range = (0.5, 3.0)
    occlusion_width: Range = (0.2, 1.0)
    """Width of an occlusion burst as a fraction of the bin (1.0: the whole bin)."""
    outages: int = 0
    outage_s: Range = (10.0, 60.0)
    end_quiet_s: float = 5.0
    """No tray is placed in the last seconds of a scenario (a tray placed as the recording stops is
    seen by nobody, so it would only measure the cut, not the counter)."""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Bin:
    bin_id: int
    slide_start: float
    slide_end: float
    placements: np.ndarray
    slot_boxes: np.ndarray  # (capacity, 4), in fill order
    end_t: float = float("inf")


@dataclass
class Scenario:
    """A line, a duration, a detector error model and a seed: everything needed to replay it."""

    spec: LineSpec = field(default_factory=LineSpec)
    duration_s: float = 3600.0
    error_model: ErrorModel = field(default_factory=ErrorModel)
    seed: int = 0

    @property
    def roi(self) -> list[tuple[float, float]]:
        """A ROI polygon framing the bin with a small margin (what an installer would draw)."""
        x0, y0, x1, y1 = self.spec.bin_rect
        mx, my = 0.04 * (x1 - x0), 0.04 * (y1 - y0)
        return [(x0 - mx, y0 - my), (x1 + mx, y0 - my), (x1 + mx, y1 + my), (x0 - mx, y1 + my)]

    def with_seed(self, seed: int) -> Scenario:
        return replace(self, seed=seed)


@dataclass(frozen=True)
class SimFrame:
    frame: int
    t: float
    boxes: np.ndarray
    scores: np.ndarray


class ScenarioRun:
    """The sampled process of a scenario: :attr:`truth` and :meth:`frames` (deterministic per seed)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        spec = scenario.spec
        rows, cols = spec.grid
        if spec.trays_per_bin[1] > rows * cols:
            raise ValueError(f"{spec.line}: {spec.trays_per_bin[1]} trays do not fit a {rows}x{cols} grid")
        self._rng = np.random.default_rng(scenario.seed)
        self.bins = self._sample_bins()
        self.occlusions = self._sample_occlusions()
        self.outages = self._sample_outages()

    # -- process -----------------------------------------------------------------------------------
    def _slot_boxes(self, rng: np.random.Generator) -> np.ndarray:
        spec = self.scenario.spec
        x0, y0, x1, y1 = spec.bin_rect
        rows, cols = spec.grid
        cw, ch = (x1 - x0) / cols, (y1 - y0) / rows
        r, c = np.divmod(np.arange(rows * cols), cols)
        cx = x0 + (c + 0.5) * cw + rng.normal(0, 0.03 * cw, rows * cols)
        cy = y0 + (r + 0.5) * ch + rng.normal(0, 0.03 * ch, rows * cols)
        w, h = 0.88 * cw, 0.88 * ch
        return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)

    def _sample_bins(self) -> list[_Bin]:
        spec, rng, duration = self.scenario.spec, self._rng, self.scenario.duration_s
        bins: list[_Bin] = []
        t = 0.0
        slide_start, slide_end = 0.0, 0.0  # the first bin is already in place
        while slide_start < duration:
            n = int(rng.integers(spec.trays_per_bin[0], spec.trays_per_bin[1] + 1))
            pace = float(rng.choice(spec.pace, p=np.asarray(spec.pace_weights) / sum(spec.pace_weights)))
            gaps = rng.uniform(*spec.tray_interval_s, n) * pace
            gaps[0] = rng.uniform(*spec.empty_s)
            placements = slide_end + np.cumsum(gaps)
            placements = placements[placements < duration - spec.end_quiet_s]
            if not len(placements):
                placements = np.array([np.inf])
            bins.append(_Bin(len(bins) + 1, slide_start, slide_end, placements, self._slot_boxes(rng)))
            t = min(placements[-1], duration) + rng.uniform(*spec.full_dwell_s)
            slide_start = t
            slide_end = t + rng.uniform(*spec.slide_s)
            bins[-1].end_t = slide_start
        return bins

    def _sample_occlusions(self) -> list[tuple[float, float, np.ndarray]]:
        """(start, end, rect) of every hand over the bin: tray placements and random bursts."""
        spec, rng = self.scenario.spec, self._rng
        x0, y0, x1, y1 = spec.bin_rect
        rows, cols = spec.grid
        cw, ch = (x1 - x0) / cols, (y1 - y0) / rows
        occ: list[tuple[float, float, np.ndarray]] = []
        for b in self.bins:
            for i, tp in enumerate(b.placements):
                d = rng.uniform(*spec.placement_hand_s)
                sx = (b.slot_boxes[i, 0] + b.slot_boxes[i, 2]) / 2
                sy = b.slot_boxes[i, 1]
                # Hand over the target slot, arm down to the front edge of the bin.
                rect = np.array([sx - 0.7 * cw, sy - 0.2 * ch, sx + 0.7 * cw, y1 + ch])
                occ.append((tp - 0.6 * d, tp + 0.4 * d, rect))
        n = rng.poisson(spec.occlusions_per_min * self.scenario.duration_s / 60.0)
        for start in rng.uniform(0, self.scenario.duration_s, n):
            w = rng.uniform(*spec.occlusion_width) * (x1 - x0)
            h = rng.uniform(0.4, 1.0) * (y1 - y0)
            ox = rng.uniform(x0 - 0.1 * w, x1 - 0.9 * w)
            oy = y1 - h  # from the front of the bin
            occ.append((start, start + rng.uniform(*spec.occlusion_s), np.array([ox, oy - 5, ox + w, y1 + ch])))
        occ.sort(key=lambda o: o[0])
        return occ

    def _sample_outages(self) -> list[tuple[float, float]]:
        spec, rng, duration = self.scenario.spec, self._rng, self.scenario.duration_s
        out = []
        for _ in range(spec.outages):
            start = rng.uniform(0.1 * duration, 0.9 * duration)
            out.append((start, start + rng.uniform(*spec.outage_s)))
        return sorted(out)

    # -- truth ---------------------------------------------------------------------------------------
    @property
    def truth(self) -> dict:
        """``{"line", "fps", "bins": [{"bin_id", "trays", "start_t", "end_t"}], "total_trays"}``."""
        duration = self.scenario.duration_s
        bins = []
        for b in self.bins:
            if b.slide_start >= duration:
                break
            trays = int(np.sum(b.placements < min(b.end_t, duration)))
            if trays == 0:
                continue
            bins.append({"bin_id": len(bins) + 1, "trays": trays, "start_t": round(b.slide_start, 3),
                         "end_t": round(min(b.end_t, duration), 3)})
        return {"line": self.scenario.spec.line, "fps": self.scenario.spec.fps, "bins": bins,
                "total_trays": sum(b["trays"] for b in bins)}

    # -- frames --------------------------------------------------------------------------------------
    def frames(self) -> Iterator[SimFrame]:
        """Every frame's detections, in time order (frames during an outage are simply absent)."""
        sc = self.scenario
        spec = sc.spec
        rng = np.random.default_rng([sc.seed, 1])  # the detector's own stream: process stays fixed
        detector = TrayDetectorSim(sc.error_model, rng, spec.fps, spec.bin_rect, spec.frame_size)
        x0, _, x1, _ = spec.bin_rect
        n_frames = int(round(sc.duration_s * spec.fps))
        occ = self.occlusions
        occ_next = 0
        active: list[tuple[float, float, np.ndarray]] = []
        outages = self.outages
        bi = 0
        for f in range(n_frames):
            t = f / spec.fps
            if any(a <= t < b for a, b in outages):
                continue
            while occ_next < len(occ) and occ[occ_next][0] <= t:
                active.append(occ[occ_next])
                occ_next += 1
            active = [o for o in active if o[1] > t]
            while bi + 1 < len(self.bins) and self.bins[bi + 1].slide_start <= t:
                bi += 1
            groups = []
            cur = self.bins[bi]
            if t < cur.slide_end and bi > 0:
                # The new bin is sliding in from the left over the previous one.
                prev = self.bins[bi - 1]
                progress = (t - cur.slide_start) / max(cur.slide_end - cur.slide_start, 1e-6)
                edge = x0 - 0.05 * (x1 - x0) + progress * 1.1 * (x1 - x0)
                groups.append(self._visible(prev, t, active, edge))
            groups.append(self._visible(cur, t, active, None))
            boxes, scores = detector.detect(groups)
            yield SimFrame(f, round(t, 4), boxes, scores)

    @staticmethod
    def _visible(b: _Bin, t: float, active: list[tuple[float, float, np.ndarray]],
                 cover_edge: float | None) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        k = int(np.searchsorted(b.placements, t, side="right"))
        boxes = b.slot_boxes[:k]
        slots = np.arange(k)
        cx = (boxes[:, 0] + boxes[:, 2]) / 2
        cy = (boxes[:, 1] + boxes[:, 3]) / 2
        hidden = np.zeros(k, dtype=bool)
        partial = np.zeros(k, dtype=bool)
        if cover_edge is not None:
            hidden |= cx < cover_edge
            partial |= boxes[:, 0] < cover_edge
        for _, _, r in active:
            hidden |= (cx >= r[0]) & (cx <= r[2]) & (cy >= r[1]) & (cy <= r[3])
            partial |= (boxes[:, 2] > r[0]) & (boxes[:, 0] < r[2]) & (boxes[:, 3] > r[1]) & (boxes[:, 1] < r[3])
        keep = ~hidden
        return b.bin_id, slots[keep], boxes[keep], partial[keep]


LINE_PRESETS: dict[str, LineSpec] = {
    # Standard 24-tray bins, normal pace, 10 fps; one camera outage.
    "line-1": LineSpec(line="line-1", fps=10.0, grid=(4, 6), trays_per_bin=(22, 24), tray_interval_s=(3.0, 6.0),
                       outages=1),
    # Small 16-slot bins filled fast, refilled almost at once after a swap; 15 fps camera.
    "line-2": LineSpec(line="line-2", fps=15.0, bin_rect=(380.0, 200.0, 900.0, 600.0), grid=(4, 4),
                       trays_per_bin=(12, 16), tray_interval_s=(2.0, 3.5), empty_s=(0.3, 2.0),
                       full_dwell_s=(2.5, 6.0), pace_weights=(0.4, 0.4, 0.2)),
    # Big 30-tray bins filled slowly, a busy worker (more occlusion bursts), 8 fps.
    "line-3": LineSpec(line="line-3", fps=8.0, bin_rect=(300.0, 120.0, 980.0, 620.0), grid=(5, 6),
                       trays_per_bin=(28, 30), tray_interval_s=(5.0, 12.0), occlusions_per_min=1.5,
                       slide_s=(1.0, 3.0)),
    # Small 6-10 tray bins, mixed pace, 12 fps; two camera outages.
    "line-4": LineSpec(line="line-4", fps=12.0, bin_rect=(500.0, 250.0, 800.0, 520.0), grid=(3, 4),
                       trays_per_bin=(6, 10), tray_interval_s=(2.5, 8.0), pace_weights=(0.3, 0.3, 0.4),
                       outages=2, outage_s=(5.0, 30.0)),
}


def preset(line: str) -> LineSpec:
    if line not in LINE_PRESETS:
        raise KeyError(line)
    return LINE_PRESETS[line]


def write_detections(scenario: Scenario, out: Path) -> dict:
    """Write ``detections.jsonl`` (replay format), ``truth.json`` and ``counting.yaml`` into ``out``.

    ``counting.yaml`` is a minimal app config with the scenario's stream and ROI, so that
    ``edge-app count --detections out/detections.jsonl --config out/counting.yaml`` counts it the way a
    deployed app would. Files are written to temporary names and renamed when complete.
    """
    import yaml

    from edge_app.detections import Detections
    from edge_app.replay import ReplayWriter

    out.mkdir(parents=True, exist_ok=True)
    run = ScenarioRun(scenario)
    spec = scenario.spec
    jsonl = out / "detections.jsonl"
    tmp = out / "detections.jsonl.tmp"
    tmp.unlink(missing_ok=True)
    frames = 0
    names = ("tray",)
    with ReplayWriter(tmp) as writer:
        for fr in run.frames():
            dets = Detections(fr.boxes, fr.scores, np.zeros(len(fr.scores), np.int32), names)
            writer.write(spec.line, fr.frame, fr.t, dets)
            frames += 1
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, jsonl)
    truth = run.truth
    atomic_write_text(out / "truth.json", json.dumps(truth, indent=1) + "\n")
    config = {
        "model": {"path": "model.onnx", "score_threshold": 0.5, "class_names": ["tray"]},
        "streams": [{"name": spec.line, "uri": f"sim://{spec.line}", "line": spec.line,
                     "roi": [[round(x, 1), round(y, 1)] for x, y in scenario.roi]}],
        "mqtt": {"enabled": False},
    }
    header = (f"# Counting config for the simulated stream {spec.line} (seed {scenario.seed}).\n"
              f"# edge-app count --detections {jsonl} --config {out / 'counting.yaml'}\n")
    atomic_write_text(out / "counting.yaml", header + yaml.safe_dump(config, sort_keys=False))
    return {"frames": frames, "bins": len(truth["bins"]), "total_trays": truth["total_trays"],
            "detections": str(jsonl)}

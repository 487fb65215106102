"""A detector error model: what a good-but-real tray detector does to the trays a camera sees.

`sim.scenarios` decides which trays are physically visible in each frame (placed, not yet covered by
the next bin, not under a hand); this module turns them into detections the way a trained SSD/YOLO
would, frame by frame:

* **Missed trays, correlated in time.** Each tray has a two-state Markov chain (detected / missed).
  With stationary miss rate :math:`m` and mean miss-run length :math:`r` frames, the chain leaves the
  missed state with probability :math:`b = 1/r` and enters it with :math:`a = m\\,b / (1 - m)`, so
  the long-run share of missed frames is :math:`a/(a+b) = m`. Real misses come in runs (a reflection
  lasts a few frames), which is harder for a counter than independent misses.
* **Hard trays.** A share of trays (glare, a torn label) is missed much more often.
* **Partly covered trays** (under the edge of a hand or of the sliding bin) are missed more often.
* **Low-score boxes.** Some misses still produce a box, below the score threshold.
* **False positives in bursts.** Bursts start as a Poisson process; most last a frame or two, some
  last a second or more (a glove, a label on the bin rim); some land outside the bin (the ROI
  removes those); some have scores below the threshold.
* **Box jitter:** Gaussian noise on the corners, proportional to the box size.

Scores of real detections are ``0.5 + 0.5 * Beta(6, 2)`` (mean ~0.87); the model assumes a score
threshold of 0.5, the app's default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SCORE_THRESHOLD = 0.5


@dataclass(frozen=True)
class ErrorModel:
    """Parameters of the simulated detector (the defaults are "the default error model")."""

    miss_rate: float = 0.02
    """Stationary per-tray, per-frame probability that a visible tray is not detected."""
    miss_run_frames: float = 3.0
    """Mean length of a run of consecutive misses of one tray (temporal correlation)."""
    hard_tray_share: float = 0.02
    """Share of trays that are hard for the detector."""
    hard_miss_rate: float = 0.3
    """Miss rate of a hard tray."""
    partial_miss_rate: float = 0.35
    """Miss rate of a tray partly covered by a hand or by the sliding bin."""
    low_score_share: float = 0.5
    """Share of misses that still produce a box, with a score below the threshold."""
    fp_per_min: float = 4.0
    """False-positive bursts per minute (above the threshold)."""
    fp_burst_frames: float = 1.5
    """Mean length of a short false-positive burst, in frames."""
    fp_long_share: float = 0.1
    """Share of bursts that last long (``fp_long_s``)."""
    fp_long_s: tuple[float, float] = (0.5, 2.0)
    fp_outside_share: float = 0.3
    """Share of false positives outside the bin (removed by a ROI that frames the bin)."""
    low_fp_per_frame: float = 0.3
    """Mean number of below-threshold false boxes per frame."""
    jitter: float = 0.03
    """Box-corner noise, standard deviation as a fraction of the box size."""

    def to_dict(self) -> dict:
        return asdict(self)

    def scaled(self, factor: float) -> ErrorModel:
        """A harsher (factor > 1) or milder model: scales miss and false-positive rates."""
        return ErrorModel(
            **{**self.to_dict(), "miss_rate": min(0.9, self.miss_rate * factor),
               "hard_miss_rate": min(0.95, self.hard_miss_rate * factor),
               "fp_per_min": self.fp_per_min * factor, "jitter": self.jitter * factor}
        )


class TrayDetectorSim:
    """Stateful per-line detector simulator; call :meth:`detect` once per frame, in time order."""

    def __init__(self, model: ErrorModel, rng: np.random.Generator, fps: float,
                 bin_rect: tuple[float, float, float, float], frame_size: tuple[int, int]) -> None:
        self.model = model
        self.rng = rng
        self.fps = fps
        self.bin_rect = bin_rect
        self.frame_size = frame_size
        self._missed: dict[int, np.ndarray] = {}
        self._miss_rate: dict[int, np.ndarray] = {}
        self._bursts: list[tuple[int, np.ndarray, float]] = []  # (frames left, box, score)
        self._leave = 1.0 / max(model.miss_run_frames, 1.0)

    def _tray_state(self, bin_key: int, capacity: int) -> tuple[np.ndarray, np.ndarray]:
        if bin_key not in self._missed:
            m = self.model
            hard = self.rng.random(capacity) < m.hard_tray_share
            self._miss_rate[bin_key] = np.where(hard, m.hard_miss_rate, m.miss_rate)
            self._missed[bin_key] = np.zeros(capacity, dtype=bool)
            # Only the current and the previous bin can be on screen: forget older ones.
            for old in [k for k in self._missed if k < bin_key - 1]:
                del self._missed[old], self._miss_rate[old]
        return self._missed[bin_key], self._miss_rate[bin_key]

    def detect(self, groups: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """Detections for one frame.

        ``groups``: per visible bin, ``(bin_key, slot_ids, boxes, partial)`` of the trays physically
        visible (``partial``: boolean, tray partly covered). Returns ``(boxes (N, 4), scores (N,))``.
        """
        m, rng = self.model, self.rng
        out_boxes: list[np.ndarray] = []
        out_scores: list[np.ndarray] = []
        for bin_key, slots, boxes, partial in groups:
            capacity = int(slots.max()) + 1 if len(slots) else 1
            missed, rate = self._tray_state(bin_key, max(capacity, 64))
            if not len(slots):
                continue
            # Markov step for the visible trays only (a hidden tray's state is frozen).
            r = rate[slots]
            enter = r * self._leave / np.maximum(1.0 - r, 1e-6)
            u = rng.random(len(slots))
            was = missed[slots]
            now = np.where(was, u >= self._leave, u < enter)
            missed[slots] = now
            miss = now | (partial & (rng.random(len(slots)) < m.partial_miss_rate))
            det = boxes[~miss]
            if len(det):
                out_boxes.append(self._jitter(det))
                out_scores.append(SCORE_THRESHOLD + 0.5 * rng.beta(6.0, 2.0, len(det)) * 0.999)
            low = boxes[miss & (rng.random(len(slots)) < m.low_score_share)]
            if len(low):
                out_boxes.append(self._jitter(low))
                out_scores.append(rng.uniform(0.1, SCORE_THRESHOLD - 0.01, len(low)))
        fp_boxes, fp_scores = self._false_positives()
        out_boxes.append(fp_boxes)
        out_scores.append(fp_scores)
        return np.concatenate(out_boxes).astype(np.float32), np.concatenate(out_scores).astype(np.float32)

    def _jitter(self, boxes: np.ndarray) -> np.ndarray:
        w = boxes[:, 2] - boxes[:, 0]
        h = boxes[:, 3] - boxes[:, 1]
        scale = np.stack([w, h, w, h], axis=1) * self.model.jitter
        return boxes + self.rng.normal(0.0, 1.0, boxes.shape) * scale

    def _random_box(self, outside: bool) -> np.ndarray:
        x0, y0, x1, y1 = self.bin_rect
        fw, fh = self.frame_size
        bw, bh = (x1 - x0) / 5, (y1 - y0) / 5
        rng = self.rng
        if outside:
            # Left or right of the bin: the stack of full bins, the conveyor.
            if rng.random() < 0.5:
                cx = rng.uniform(bw, max(bw + 1, x0 - bw))
            else:
                cx = rng.uniform(min(x1 + bw, fw - bw - 1), fw - bw)
            cy = rng.uniform(bh, fh - bh)
        else:
            cx, cy = rng.uniform(x0 + bw / 2, x1 - bw / 2), rng.uniform(y0 + bh / 2, y1 - bh / 2)
        w, h = bw * rng.uniform(0.6, 1.3), bh * rng.uniform(0.6, 1.3)
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dtype=np.float64)

    def _false_positives(self) -> tuple[np.ndarray, np.ndarray]:
        m, rng = self.model, self.rng
        for _ in range(rng.poisson(m.fp_per_min / 60.0 / self.fps)):
            if rng.random() < m.fp_long_share:
                frames = max(1, int(round(rng.uniform(*m.fp_long_s) * self.fps)))
            else:
                frames = int(rng.geometric(1.0 / max(m.fp_burst_frames, 1.0)))
            self._bursts.append((frames, self._random_box(rng.random() < m.fp_outside_share),
                                 float(rng.uniform(SCORE_THRESHOLD, 0.85))))
        boxes = [box for _, box, _ in self._bursts]
        scores = [score for _, _, score in self._bursts]
        self._bursts = [(n - 1, box, s) for n, box, s in self._bursts if n > 1]
        for _ in range(rng.poisson(m.low_fp_per_frame)):
            boxes.append(self._random_box(rng.random() < 0.5))
            scores.append(float(rng.uniform(0.05, SCORE_THRESHOLD - 0.02)))
        if not boxes:
            return np.zeros((0, 4)), np.zeros(0)
        return self._jitter(np.array(boxes)), np.array(scores)

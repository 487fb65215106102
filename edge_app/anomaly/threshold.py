"""Choosing the decision threshold and normalizing scores so that the threshold maps to 0.5.

From normal images alone the threshold is set on *held-out* normal scores (each normal image scored by a
model that did not see it, k-fold), because scores of training images are optimistically low::

    t = q_p + margin * (q_p - q_50)

where ``q_p`` is the p-th percentile of held-out normal scores (default 99th) and the margin is a fraction of
the spread between that percentile and the median; the spread makes the margin scale-free.

With anomalous examples the threshold maximizes F1 over held-out normals and the anomalous scores.

Normalization is a logistic curve centred on the threshold::

    normalized(s) = 1 / (1 + exp(-(s - t) / scale)),   scale = (t - q_50) / 3

so the threshold maps to 0.5 and the median normal image to about 0.05. It is monotone, so AUROC is unchanged,
and ``confidence = max(n, 1 - n)`` reads as "how far from the boundary" in the same units everywhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edge_app.anomaly.metrics import f1_optimal_threshold


@dataclass(frozen=True, slots=True)
class Calibration:
    """Threshold on raw scores and the logistic normalization around it."""

    threshold: float
    scale: float
    method: str
    """``normal-percentile`` or ``f1-optimal``."""

    def normalize(self, raw: np.ndarray | float) -> np.ndarray:
        z = (np.asarray(raw, dtype=np.float64) - self.threshold) / self.scale
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        return cls(threshold=float(data["threshold"]), scale=float(data["scale"]), method=str(data["method"]))


def threshold_from_normals(normal_scores: np.ndarray, percentile: float = 99.0, margin: float = 0.25) -> float:
    """High percentile of held-out normal scores plus a margin proportional to their spread."""
    scores = np.asarray(normal_scores, dtype=np.float64).ravel()
    if scores.size < 2:
        raise ValueError("need at least two normal scores to set a threshold")
    q_p = float(np.percentile(scores, percentile))
    q_50 = float(np.median(scores))
    return q_p + margin * max(q_p - q_50, 1e-9)


def calibrate(normal_scores: np.ndarray, anomalous_scores: np.ndarray | None = None,
              percentile: float = 99.0, margin: float = 0.25) -> Calibration:
    """Threshold (F1-optimal with anomalous examples, else normal-percentile) and its normalization scale."""
    normal = np.asarray(normal_scores, dtype=np.float64).ravel()
    if anomalous_scores is not None and np.asarray(anomalous_scores).size:
        anomalous = np.asarray(anomalous_scores, dtype=np.float64).ravel()
        labels = np.r_[np.zeros(normal.size, bool), np.ones(anomalous.size, bool)]
        threshold, _ = f1_optimal_threshold(labels, np.r_[normal, anomalous])
        method = "f1-optimal"
    else:
        threshold = threshold_from_normals(normal, percentile, margin)
        method = "normal-percentile"
    median = float(np.median(normal))
    scale = max((threshold - median) / 3.0, 1e-6 * max(abs(threshold), 1.0))
    return Calibration(threshold=float(threshold), scale=float(scale), method=method)

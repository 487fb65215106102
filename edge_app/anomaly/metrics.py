"""Evaluation metrics: ROC AUC, ROC curve, precision / recall / F1, and the F1-optimal threshold.

AUROC is computed through its rank form (the Mann-Whitney U statistic)::

    AUROC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)

where ``R_pos`` is the sum of the ranks of the positive scores among all scores, with tied scores given their
average rank. It is the probability that a random positive scores above a random negative (ties count 1/2),
and needs one sort, so it also works for millions of pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; ``nan`` when only one class is present."""
    labels = np.asarray(labels).ravel().astype(bool)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels and scores differ in size: {labels.size} vs {scores.size}")
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rates, true-positive rates and thresholds (descending), one point per distinct score."""
    labels = np.asarray(labels).ravel().astype(bool)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last_of_tie = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tps = np.cumsum(y)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return np.r_[0.0, fps / n_neg], np.r_[0.0, tps / n_pos], np.r_[np.inf, s[last_of_tie]]


@dataclass(frozen=True, slots=True)
class Confusion:
    """Counts at one decision threshold, with precision, recall and F1 (0 when undefined)."""

    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall: 2PR / (P + R) = 2TP / (2TP + FP + FN)."""
        denom = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denom if denom else 0.0


def confusion_at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> Confusion:
    """Confusion counts when ``score >= threshold`` is predicted anomalous."""
    labels = np.asarray(labels).ravel().astype(bool)
    predicted = np.asarray(scores).ravel() >= threshold
    return Confusion(tp=int((predicted & labels).sum()), fp=int((predicted & ~labels).sum()),
                     tn=int((~predicted & ~labels).sum()), fn=int((~predicted & labels).sum()))


def f1_optimal_threshold(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The threshold with the best F1 and that F1.

    Candidates are midpoints between consecutive distinct scores (so the threshold sits in the gap, not on a
    sample), plus one just below the lowest score. Ties in F1 go to the largest gap.
    """
    labels = np.asarray(labels).ravel().astype(bool)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if not labels.any():
        raise ValueError("F1 needs at least one anomalous example")
    distinct = np.unique(scores)
    candidates = np.r_[distinct[0] - 1e-6 * max(1.0, abs(distinct[0])), (distinct[:-1] + distinct[1:]) / 2.0]
    gaps = np.r_[0.0, np.diff(distinct)]
    best = (-1.0, -1.0, float(candidates[0]))
    for thr, gap in zip(candidates, gaps, strict=True):
        f1 = confusion_at(labels, scores, float(thr)).f1
        if (f1, gap) > best[:2]:
            best = (f1, float(gap), float(thr))
    return best[2], best[0]

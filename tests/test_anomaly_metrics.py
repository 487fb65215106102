"""Metrics and thresholds against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_app.anomaly.metrics import auroc, confusion_at, f1_optimal_threshold, roc_curve
from edge_app.anomaly.threshold import calibrate, threshold_from_normals


def test_auroc_perfect_inverted_and_chance() -> None:
    assert auroc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auroc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert auroc([0, 1], [0.5, 0.5]) == 0.5  # a tie counts one half


def test_auroc_hand_computed() -> None:
    # positives {0.8, 0.4}, negatives {0.7, 0.3, 0.1}: pairs won = (0.8 beats 3) + (0.4 beats 2) = 5 of 6
    assert auroc([1, 0, 1, 0, 0], [0.8, 0.7, 0.4, 0.3, 0.1]) == pytest.approx(5 / 6)
    # positives {0.6, 0.5}, negatives {0.5, 0.2}: 0.6 wins 2 pairs, 0.5 wins 1 and ties 1 -> 3.5 of 4
    assert auroc([1, 1, 0, 0], [0.6, 0.5, 0.5, 0.2]) == pytest.approx((2 + 1.5) / 4)


def test_auroc_single_class_is_nan() -> None:
    assert math.isnan(auroc([0, 0, 0], [0.1, 0.2, 0.3]))


def test_auroc_pixel_arrays_match_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random((3, 8, 8)) < 0.2
    scores = rng.random((3, 8, 8)).round(1)  # many ties
    pos, neg = scores[labels], scores[~labels]
    pairwise = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (pos.size * neg.size)
    assert auroc(labels, scores) == pytest.approx(pairwise)


def test_roc_curve_points() -> None:
    fpr, tpr, thr = roc_curve([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1])
    assert fpr.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert thr[1:].tolist() == [0.9, 0.8, 0.7, 0.1]


def test_confusion_precision_recall_f1() -> None:
    labels = [1, 1, 1, 0, 0, 0, 0]
    scores = [0.9, 0.6, 0.2, 0.7, 0.1, 0.3, 0.4]
    c = confusion_at(labels, scores, 0.5)  # predicted: 0.9, 0.6, 0.7 -> tp 2, fp 1, fn 1, tn 3
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 1, 1, 3)
    assert c.precision == pytest.approx(2 / 3)
    assert c.recall == pytest.approx(2 / 3)
    assert c.f1 == pytest.approx(2 / 3)
    empty = confusion_at([0, 0], [0.1, 0.2], 0.5)
    assert (empty.precision, empty.recall, empty.f1) == (0.0, 0.0, 0.0)


def test_f1_optimal_threshold_sits_in_the_gap() -> None:
    threshold, f1 = f1_optimal_threshold([0, 0, 0, 1, 1], [1.0, 2.0, 3.0, 5.0, 6.0])
    assert f1 == 1.0
    assert threshold == pytest.approx(4.0)  # midpoint of the gap between 3 and 5
    threshold, f1 = f1_optimal_threshold([0, 1, 0, 1], [1.0, 2.0, 3.0, 4.0])
    # best: flag {2,3,4} -> tp 2 fp 1 -> F1 0.8 (flag {4} gives 0.667, flag all gives 0.667)
    assert f1 == pytest.approx(0.8)
    assert 1.0 < threshold < 2.0


def test_threshold_from_normals_percentile_plus_margin() -> None:
    scores = np.arange(1, 101, dtype=float)  # 1..100
    q99 = np.percentile(scores, 99)
    assert threshold_from_normals(scores, 99, 0.25) == pytest.approx(q99 + 0.25 * (q99 - 50.5))
    assert threshold_from_normals(scores, 99, 0.0) == pytest.approx(q99)
    with pytest.raises(ValueError):
        threshold_from_normals([1.0])


def test_calibration_maps_threshold_to_half_and_is_monotone() -> None:
    normals = np.array([1.0, 1.2, 1.1, 0.9, 1.4, 1.0])
    cal = calibrate(normals)
    assert cal.method == "normal-percentile"
    assert cal.threshold > normals.max()
    assert float(cal.normalize(cal.threshold)) == pytest.approx(0.5)
    assert float(cal.normalize(np.median(normals))) == pytest.approx(1 / (1 + math.exp(3)))
    grid = cal.normalize(np.linspace(0, 5, 50))
    assert np.all(np.diff(grid) >= 0) and grid[0] < 0.5 < grid[-1]


def test_calibration_with_anomalous_examples_is_f1_optimal() -> None:
    cal = calibrate(np.array([1.0, 2.0, 3.0]), np.array([2.5, 6.0, 7.0]))
    assert cal.method == "f1-optimal"
    # flag >= 4.5 -> tp 2, fn 1, fp 0 -> F1 0.8; flag >= 2.25 -> tp 3, fp 1 -> F1 6/7 (best)
    assert cal.threshold == pytest.approx(2.25)

"""Per-location Gaussians (Ledoit-Wolf, fold exclusion), the filter bank, and ONNX == numpy parity."""

from __future__ import annotations

import numpy as np
import pytest

from edge_app.anomaly.features import FeatureSpec, extract_features, to_batch
from edge_app.anomaly.model import MomentAccumulator, feature_scale, fit_gaussians, mahalanobis_grid, raw_maps
from edge_app.anomaly.onnx_export import build_graph, make_session
from edge_app.anomaly.registration import valid_mask
from edge_app.anomaly.threshold import Calibration
from sim.anomaly_parts import render_part


def _ledoit_wolf(x: np.ndarray) -> np.ndarray:
    """Textbook Ledoit-Wolf (2004) shrunk covariance of rows of ``x``, written out directly."""
    n, d = x.shape
    xc = x - x.mean(axis=0)
    s = xc.T @ xc / n
    nu = np.trace(s) / d
    d2 = ((s - nu * np.eye(d)) ** 2).sum()
    b2 = sum(((np.outer(v, v) - s) ** 2).sum() for v in xc) / n**2
    delta = min(b2, d2) / d2
    return delta * nu * np.eye(d) + (1 - delta) * s


def test_gaussians_match_textbook_ledoit_wolf_mahalanobis() -> None:
    rng = np.random.default_rng(0)
    feats = (rng.standard_normal((30, 6, 4, 4)) * rng.uniform(0.5, 4, 6)[None, :, None, None] + 3).astype(np.float32)
    field = fit_gaussians(feats, neighbourhood=0)
    scale = feature_scale(feats)
    probe = (rng.standard_normal((2, 6, 4, 4)) * 2).astype(np.float32)
    dist = mahalanobis_grid(probe, field)
    for cell in [(0, 0), (2, 3)]:
        x = feats[:, :, cell[0], cell[1]] / scale
        sigma = _ledoit_wolf(x.astype(np.float64))
        for i in range(2):
            d = probe[i, :, cell[0], cell[1]] / scale - x.mean(axis=0)
            assert dist[i, cell[0], cell[1]] == pytest.approx(np.sqrt(d @ np.linalg.solve(sigma, d)), rel=1e-4)


def test_fold_exclusion_equals_fitting_without_that_fold() -> None:
    rng = np.random.default_rng(1)
    feats = rng.standard_normal((12, 5, 6, 6)).astype(np.float32)
    scale = feature_scale(feats)
    acc = MomentAccumulator(scale, 6, groups=3, neighbourhood=1, neighbour_weight=0.2)
    for i in range(12):
        acc.add(feats[i:i + 1], i % 3)
    alone = MomentAccumulator(scale, 6, groups=1, neighbourhood=1, neighbour_weight=0.2)
    alone.add(feats[np.arange(12) % 3 != 1])
    a, b = acc.fit(exclude_group=1), alone.fit()
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a.whitener, b.whitener, rtol=1e-3, atol=1e-4)


def test_features_ignore_global_brightness_and_contrast() -> None:
    spec = FeatureSpec(size=128)
    image, _ = render_part("label", np.random.default_rng(2), None, 128, lighting=False)
    brighter = np.clip(image.astype(np.float32) * 0.8 + 20, 0, 255)
    f1 = extract_features(to_batch(image), spec)
    f2 = extract_features(to_batch(brighter), spec)
    assert f1.shape == (1, spec.dim, spec.grid, spec.grid)
    assert np.abs(f1 - f2).max() < 1e-3 * np.abs(f1).max() + 1e-3


def test_onnx_graph_equals_numpy_reference() -> None:
    spec = FeatureSpec(size=128)
    rng = np.random.default_rng(3)
    normal = [render_part("carrier", rng, None, 128)[0] for _ in range(8)]
    field = fit_gaussians(extract_features(to_batch(normal), spec))
    cal = Calibration(threshold=9.0, scale=1.5, method="normal-percentile")
    session = make_session(build_graph(spec, field, 1.0, cal).SerializeToString())
    test = [render_part("carrier", rng, d, 128)[0] for d in (None, "debris", "missing_pin")]
    warps = [np.eye(2, 3, dtype=np.float32), np.float32([[1, 0, 3], [0, 1, -2]]), np.eye(2, 3, dtype=np.float32)]
    valid = np.stack([valid_mask(128, w, 8) for w in warps])
    anomaly_map, score, raw_map, raw_score = session.run(None, {"image": to_batch(test), "valid": valid[:, None]})
    reference = raw_maps(extract_features(to_batch(test), spec), field, 1.0, 128, valid)
    assert raw_map.shape == (3, 1, 128, 128) and score.shape == (3,)
    np.testing.assert_allclose(raw_map[:, 0], reference, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(raw_score, reference.reshape(3, -1).max(axis=1), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(anomaly_map[:, 0], cal.normalize(reference), atol=1e-4)
    np.testing.assert_allclose(score, cal.normalize(reference.reshape(3, -1).max(axis=1)), atol=1e-4)
    # aligned(x, y) = image(x + 3, y - 2): the right and top bands (+ 8 px margin) are invented, never scored
    assert raw_map[1, 0, :, -11:].max() == 0.0 and raw_map[1, 0, :10].max() == 0.0
    assert raw_map[1, 0, 10:-11, :-11].min() > 0.0

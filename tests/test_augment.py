"""Augmentations move boxes with the pixels; the ROI mask is the edge app's own."""

from __future__ import annotations

import numpy as np
import pytest

from edge_app.roi import Roi
from training.augment import apply_roi, augment, crop, expand, hflip, motion_blur, motion_kernel, vflip


def _scene() -> tuple[np.ndarray, np.ndarray]:
    img = np.zeros((60, 80, 3), np.uint8)
    img[10:30, 20:50] = 255  # one white object
    return img, np.array([[20, 10, 50, 30, 0]], np.float32)


def _white_bbox(img: np.ndarray) -> list[float]:
    ys, xs = np.where(img[:, :, 0] > 127)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_geometric_ops_keep_box_on_object() -> None:
    rng = np.random.default_rng(0)
    img, boxes = _scene()
    for op in (lambda i, b: hflip(i, b), lambda i, b: vflip(i, b), lambda i, b: expand(i, b, rng)):
        out, out_boxes = op(img, boxes)
        np.testing.assert_allclose(out_boxes[0, :4], _white_bbox(out), atol=1)
    for _ in range(20):
        out, out_boxes = crop(img, boxes, rng)
        if len(out_boxes):
            np.testing.assert_allclose(out_boxes[0, :4], _white_bbox(out), atol=1)


def test_full_chain_boxes_stay_in_image_and_are_seeded() -> None:
    img, boxes = _scene()
    a = augment(img, boxes, np.random.default_rng(5))
    b = augment(img, boxes, np.random.default_rng(5))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    for seed in range(30):
        out, out_boxes = augment(img, boxes, np.random.default_rng(seed))
        h, w = out.shape[:2]
        assert (out_boxes[:, [0, 2]] >= -1e-3).all() and (out_boxes[:, [0, 2]] <= w + 1e-3).all()
        assert (out_boxes[:, [1, 3]] >= -1e-3).all() and (out_boxes[:, [1, 3]] <= h + 1e-3).all()


def test_roi_mask_identical_to_edge_app_and_drops_outside_boxes() -> None:
    img = np.random.default_rng(1).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    boxes = np.array([[5, 5, 15, 15, 0], [60, 40, 75, 55, 0]], np.float32)
    polygon = [(0, 0), (40, 0), (40, 30), (0, 30)]
    masked, kept = apply_roi(img, boxes, polygon)
    assert np.array_equal(masked, Roi(polygon).mask(img))
    assert kept.tolist() == [[5, 5, 15, 15, 0]]


def test_motion_kernel_is_a_normalised_line_along_its_angle() -> None:
    flat = motion_kernel(9, 0.0)
    assert abs(flat.sum() - 1.0) < 1e-5
    assert np.count_nonzero(flat[4]) == 9 and np.count_nonzero(np.delete(flat, 4, 0)) == 0
    upright = motion_kernel(9, 90.0)
    assert np.count_nonzero(upright[:, 4]) >= 7 and abs(upright.sum() - 1.0) < 1e-5


def test_motion_blur_smears_only_around_the_chosen_box() -> None:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    boxes = np.array([[20, 10, 50, 30, 0]], np.float32)
    out = motion_blur(img, boxes, np.random.default_rng(0), margin=0.3)
    changed = np.argwhere((out != img).any(axis=2))
    assert len(changed) > 0
    # the box plus 30 % of its size around it: x 11..59, y 4..36
    assert changed[:, 1].min() >= 11 and changed[:, 1].max() < 59
    assert changed[:, 0].min() >= 4 and changed[:, 0].max() < 36
    assert out[changed[:, 0], changed[:, 1]].std() < img[changed[:, 0], changed[:, 1]].std()  # smoother
    whole = motion_blur(img, boxes[:0], np.random.default_rng(0))
    assert (whole != img).any(axis=2).mean() > 0.9  # no box: camera shake blurs the whole frame


def test_motion_blur_is_off_by_default_and_draws_nothing_then(monkeypatch: pytest.MonkeyPatch) -> None:
    import training.augment as aug

    rng = np.random.default_rng(3)
    img = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    boxes = np.array([[20, 10, 50, 30, 0]], np.float32)
    calls: list[int] = []
    real = aug.motion_blur
    monkeypatch.setattr(aug, "motion_blur", lambda i, b, r: calls.append(1) or real(i, b, r))
    default = augment(img, boxes, np.random.default_rng(7))
    off = augment(img, boxes, np.random.default_rng(7), motion_blur_p=0.0)
    assert np.array_equal(default[0], off[0]) and np.array_equal(default[1], off[1]) and not calls
    for seed in range(5):
        augment(img, boxes, np.random.default_rng(seed), motion_blur_p=1.0)
    assert len(calls) == 5
    # p = 0 draws no random number: a tiny p draws one (and never blurs), which shifts every later draw, so some
    # seed's flips/crops come out different. If p = 0 drew too, the two would always agree.
    calls.clear()
    differs = [not np.array_equal(augment(img, boxes, np.random.default_rng(seed))[1],
                                  augment(img, boxes, np.random.default_rng(seed), motion_blur_p=1e-12)[1])
               for seed in range(20)]
    assert any(differs) and not calls

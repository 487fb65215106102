"""ECC registration: recovers known shifts and rotations, falls back (and counts it) when it cannot."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_app.anomaly.registration import Registrar, apply_warp, build_reference, unwarp, valid_mask
from sim.anomaly_parts import Pose, render_part


def _reference() -> np.ndarray:
    image, _ = render_part("label", np.random.default_rng(5), None, 256, pose=Pose(0, 0, 0), lighting=False)
    return image


def _moved(image: np.ndarray, dx: float, dy: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """The image as the camera sees it after the part moved; and the true warp reference -> moved image."""
    h, w = image.shape[:2]
    forward = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    forward[:, 2] += (dx, dy)
    moved = cv2.warpAffine(image, forward, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return moved, forward.astype(np.float32)


@pytest.mark.parametrize(("dx", "dy", "angle"), [(4.0, -3.0, 0.0), (-6.5, 2.0, 1.5), (1.0, 5.0, -2.5)])
def test_recovers_known_shift_and_rotation(dx: float, dy: float, angle: float) -> None:
    reference = _reference()
    moved, true_warp = _moved(reference, dx, dy, angle)
    moved = cv2.convertScaleAbs(moved, alpha=1.1, beta=-12)  # lighting drift: ECC must not care
    registrar = Registrar(reference, "euclidean", levels=(4, 2, 1))
    alignment = registrar.align(moved)
    assert alignment.ok
    est_angle = -np.degrees(np.arctan2(alignment.warp[1, 0], alignment.warp[0, 0]))
    assert est_angle == pytest.approx(angle, abs=0.15)
    # compare where the two warps send a grid of points (translation depends on the rotation centre)
    pts = np.array([[x, y, 1.0] for x in (40, 128, 216) for y in (40, 128, 216)])
    assert np.abs(pts @ alignment.warp.T - pts @ true_warp.T).max() < 0.6
    aligned = apply_warp(moved, alignment.warp)
    inner = (slice(24, -24), slice(24, -24))
    before = np.abs(moved.astype(float) - reference)[inner].mean()
    after = np.abs(cv2.convertScaleAbs(aligned, alpha=1 / 1.1, beta=12 / 1.1).astype(float) - reference)[inner].mean()
    assert after < 0.35 * before
    assert registrar.stats.attempts == 1 and registrar.stats.fallbacks == 0


def test_unwarp_inverts_apply_warp() -> None:
    reference = _reference()
    moved, _ = _moved(reference, 3.0, -2.0, 1.0)
    warp = Registrar(reference, "euclidean").align(moved).warp
    marker = np.zeros((256, 256), np.float32)
    marker[100:120, 60:80] = 1.0  # a blob in reference coordinates
    back = unwarp(marker, warp)
    # the blob in image coordinates is where the reference blob lands after the part moved
    ys, xs = np.nonzero(back > 0.5)
    centre = np.array([xs.mean(), ys.mean(), 1.0])
    expected = warp @ np.array([69.5, 109.5, 1.0])
    assert np.abs(centre[:2] - expected).max() < 1.0


def test_featureless_or_unrelated_images_fall_back_to_identity_and_are_counted() -> None:
    reference = _reference()
    registrar = Registrar(reference, "euclidean")
    flat = np.full_like(reference, 128)
    assert not registrar.align(flat).ok
    noise = np.random.default_rng(0).integers(0, 255, reference.shape, dtype=np.uint8)
    result = registrar.align(noise)
    assert not result.ok and np.array_equal(result.warp, np.eye(2, 3, dtype=np.float32))
    assert registrar.stats.attempts == 2
    assert registrar.stats.fallbacks == 2
    assert registrar.stats.not_converged + registrar.stats.implausible == 2


def test_build_reference_aligns_training_images() -> None:
    rng = np.random.default_rng(1)
    images = [render_part("label", rng, None, 256)[0] for _ in range(6)]
    reference, alignments, stats = build_reference(images)
    assert reference.shape == images[0].shape
    assert all(a.ok for a in alignments) and stats.fallbacks == 0
    spread_before = np.std(np.stack(images).astype(float), axis=0).mean()
    aligned = np.stack([apply_warp(i, a.warp) for i, a in zip(images, alignments, strict=True)]).astype(float)
    assert np.std(aligned, axis=0)[24:-24, 24:-24].mean() < 0.8 * spread_before


def test_valid_mask_excludes_the_band_brought_in_from_outside() -> None:
    shift_right = np.float32([[1, 0, -10], [0, 1, 0]])  # aligned(x) = image(x - 10): columns < 10 are invented
    mask = valid_mask(64, shift_right, margin=2)
    assert mask[:, :12].max() == 0.0
    assert mask[:, 13:].min() == 1.0
    assert valid_mask(64, np.eye(2, 3, dtype=np.float32), margin=2).min() == 1.0

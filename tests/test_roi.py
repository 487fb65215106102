"""Roi: vectorized centre-in-polygon, detection filtering, masking; checked against OpenCV."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_app.config import StreamConfig
from edge_app.detections import Detections
from edge_app.roi import Roi

# A concave "L" and a triangle, in both winding orders.
L_SHAPE = [(100, 100), (500, 100), (500, 250), (250, 250), (250, 500), (100, 500)]
TRIANGLE = [(0, 0), (640, 40), (300, 470)]


@pytest.mark.parametrize("polygon", [L_SHAPE, L_SHAPE[::-1], TRIANGLE, TRIANGLE[::-1]])
def test_contains_matches_opencv_point_polygon_test(polygon) -> None:  # noqa: ANN001
    rng = np.random.default_rng(0)
    points = rng.uniform(-50, 700, (4000, 2))
    contour = np.array(polygon, np.float32).reshape(-1, 1, 2)
    signed = np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), True) for x, y in points])
    clear = np.abs(signed) > 1e-3  # leave exact-edge points to the next test
    inside = Roi(polygon).contains(points)
    assert inside.shape == (len(points),)
    np.testing.assert_array_equal(inside[clear], signed[clear] > 0)
    assert 0 < inside.sum() < len(points)


def test_points_on_the_edge_are_inside_whatever_the_winding() -> None:
    edge = np.array([[100, 300], [300, 100], [500, 200], [250, 400], [100, 100]], float)
    for polygon in (L_SHAPE, L_SHAPE[::-1]):
        assert Roi(polygon).contains(edge).all()


def test_no_roi_is_everything_and_empty_input_is_fine() -> None:
    roi = Roi(None)
    assert roi.is_everything
    assert roi.contains(np.array([[-1e6, 1e6]])).all()
    assert Roi(TRIANGLE).contains(np.zeros((0, 2))).shape == (0,)


def test_filter_keeps_detections_whose_centre_is_inside() -> None:
    boxes = np.array([
        [120, 120, 180, 180],   # centre (150, 150): inside
        [300, 300, 400, 400],   # centre (350, 350): in the L's notch, outside
        [230, 400, 330, 460],   # centre (280, 430): outside, although the box overlaps the L
        [200, 200, 320, 320],   # centre (260, 260): outside (notch), box overlaps
        [90, 450, 130, 490],    # centre (110, 470): inside
    ], np.float32)
    dets = Detections(boxes, np.linspace(0.5, 0.9, 5), np.zeros(5, np.int32), ("tray",))
    kept = Roi(L_SHAPE).filter(dets)
    np.testing.assert_array_equal(kept.boxes, boxes[[0, 4]])
    np.testing.assert_allclose(kept.scores, dets.scores[[0, 4]])
    assert Roi(None).filter(dets) is dets
    assert len(Roi(L_SHAPE).filter(Detections.empty(("tray",)))) == 0


def test_mask_blacks_out_everything_outside() -> None:
    image = np.full((600, 700, 3), 200, np.uint8)
    masked = Roi(L_SHAPE).mask(image)
    assert masked.shape == image.shape and masked.dtype == np.uint8
    assert (masked[150, 150] == 200).all()  # inside (row y=150, column x=150)
    assert (masked[350, 350] == 0).all()  # the notch
    assert (masked[550, 650] == 0).all()
    assert (image == 200).all()  # the input is untouched
    assert Roi(None).mask(image) is image


def test_from_config_and_bad_polygon() -> None:
    cfg = StreamConfig(name="line-1", uri="video.mp4", roi=TRIANGLE)
    assert Roi.from_config(cfg).contains(np.array([[300, 100]])).all()
    assert Roi.from_config(StreamConfig(name="line-1", uri="video.mp4")).is_everything
    with pytest.raises(ValueError, match="3 points"):
        Roi([(0, 0), (1, 1)])

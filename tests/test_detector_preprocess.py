"""GluonCV preprocessing in numpy/OpenCV vs MXNet's own ops; box mapping and output decoding."""

from __future__ import annotations

import numpy as np
import pytest
from detector_models import tray_scene

from edge_app.detectors.decode import decode_batch
from edge_app.detectors.preprocess import (
    INTER_AREA,
    INTER_CUBIC,
    INTER_LINEAR,
    auto_interpolation,
    boxes_to_frame,
    preprocess_batch,
    resize_like_gluoncv,
)


@pytest.mark.parametrize(("frame_hw", "input_wh", "expected"), [
    ((480, 640), (300, 300), INTER_AREA),
    ((200, 250), (300, 300), INTER_CUBIC),
    ((300, 200), (300, 300), INTER_LINEAR),  # grows one side only
    ((320, 640), (320, 320), INTER_LINEAR),  # same height
])
def test_auto_interpolation_follows_mxnet_rule(frame_hw, input_wh, expected) -> None:
    from mxnet.image.image import _get_interp_method

    assert auto_interpolation(frame_hw, input_wh) == expected
    assert _get_interp_method(9, (*frame_hw, input_wh[1], input_wh[0])) == expected


@pytest.mark.parametrize(("frame_hw", "input_wh", "max_diff"), [
    ((480, 640), (300, 300), 0),   # area: bit-identical
    ((1080, 1920), (320, 320), 0),  # area: bit-identical
    ((300, 200), (300, 300), 0),   # bilinear: bit-identical
    ((200, 250), (300, 300), 1),   # bicubic upscale: OpenCV versions differ by <= 1 grey level
])
def test_resize_matches_mxnet_imresize(frame_hw, input_wh, max_diff) -> None:
    import mxnet as mx

    frame = tray_scene(*frame_hw, seed=4)
    ours = resize_like_gluoncv(frame, input_wh).astype(int)
    theirs = mx.image.imresize(mx.nd.array(frame, dtype="uint8"), *input_wh,
                               interp=auto_interpolation(frame_hw, input_wh)).asnumpy().astype(int)
    diff = np.abs(ours - theirs)
    assert diff.max() <= max_diff
    if max_diff:
        assert (diff > 0).mean() < 0.2  # a few percent of pixels in practice


def test_normalisation_matches_gluoncv_val_transform() -> None:
    import mxnet as mx
    from gluoncv.data.transforms.presets.ssd import SSDDefaultValTransform
    from gluoncv.data.transforms.presets.yolo import YOLO3DefaultValTransform

    frame = tray_scene(480, 640, seed=5)
    rgb = mx.nd.array(frame[:, :, ::-1].copy(), dtype="uint8")
    label = np.zeros((1, 5), np.float32)
    for transform, size in ((SSDDefaultValTransform(300, 300), (300, 300)),
                            (YOLO3DefaultValTransform(416, 320), (416, 320))):
        expected = transform(rgb, label)[0].asnumpy()
        got = preprocess_batch([frame], size)[0]
        assert got.shape == expected.shape == (3, size[1], size[0])
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)


def test_batch_of_different_sizes_is_one_nchw_array() -> None:
    frames = [tray_scene(480, 640, 0), tray_scene(100, 90, 1), tray_scene(720, 1280, 2)]
    batch = preprocess_batch(frames, (320, 256))
    assert batch.shape == (3, 3, 256, 320) and batch.dtype == np.float32
    for i, frame in enumerate(frames):
        np.testing.assert_array_equal(batch[i], preprocess_batch([frame], (320, 256))[0])


def test_rejects_non_bgr_frames() -> None:
    with pytest.raises(ValueError, match="BGR uint8"):
        preprocess_batch([np.zeros((10, 10), np.uint8)], (32, 32))
    with pytest.raises(ValueError, match="BGR uint8"):
        preprocess_batch([np.zeros((10, 10, 3), np.float32)], (32, 32))


def test_boxes_to_frame_scales_each_axis_and_clips() -> None:
    boxes = np.array([[30, 60, 150, 240], [-10, -5, 310, 305]], np.float32)  # in a 300x300 input
    mapped = boxes_to_frame(boxes, (300, 300), (480, 1280))  # frame H=480, W=1280
    np.testing.assert_allclose(mapped[0], [30 * 1280 / 300, 60 * 480 / 300, 150 * 1280 / 300, 240 * 480 / 300],
                               rtol=1e-6)
    np.testing.assert_allclose(mapped[1], [0, 0, 1280, 480])


def _gluoncv_outputs(rows_per_image: list[list[list[float]]], k: int = 5):
    """Build (ids, scores, boxes) like the exported graph: sorted rows, then -1 padding."""
    out = np.full((len(rows_per_image), k, 6), -1.0, np.float32)
    for i, rows in enumerate(rows_per_image):
        if rows:
            out[i, : len(rows)] = rows
    return out[..., 0:1], out[..., 1:2], out[..., 2:6]


def test_decode_batch_threshold_padding_and_per_frame_mapping() -> None:
    ids, scores, boxes = _gluoncv_outputs([
        [[0, 0.9, 30, 30, 90, 60], [1, 0.55, 0, 0, 300, 300], [0, 0.2, 10, 10, 20, 20]],
        [[0, 0.7, 150, 150, 450, 450]],  # extends past the input: clipped
        [],
    ])
    frames = [(600, 800), (300, 150), (720, 1280)]
    result = decode_batch(ids, scores, boxes, frames, (300, 300), 0.5, ("tray", "hand"))
    assert [len(d) for d in result] == [2, 1, 0]
    np.testing.assert_allclose(result[0].boxes[0], [30 * 800 / 300, 30 * 600 / 300, 90 * 800 / 300, 60 * 600 / 300],
                               rtol=1e-6)
    np.testing.assert_allclose(result[0].boxes[1], [0, 0, 800, 600])
    assert result[0].names == ["tray", "hand"]
    np.testing.assert_allclose(result[0].scores, [0.9, 0.55])
    np.testing.assert_allclose(result[1].boxes[0], [75, 150, 150, 300])  # x*150/300, y*300/300, clipped
    assert result[2].class_names == ("tray", "hand")


def test_decode_batch_threshold_zero_still_drops_padding_and_empty_boxes() -> None:
    ids, scores, boxes = _gluoncv_outputs([[[0, 0.0, 10, 10, 20, 20], [0, 0.3, 400, 10, 500, 20]]])
    (det,) = decode_batch(ids, scores, boxes, [(300, 300)], (300, 300), 0.0, ("tray",))
    assert len(det) == 1  # the box entirely right of the frame has no area after clipping; padding never counts
    np.testing.assert_allclose(det.boxes[0], [10, 10, 20, 20])


def test_linear_resize_mode_is_bilinear_for_every_frame_and_gluoncv_mode_is_the_default() -> None:
    import cv2

    from edge_app.detectors.preprocess import Preprocessor, resize_frame

    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    linear = resize_frame(frame, (300, 300), "linear")
    np.testing.assert_array_equal(linear, cv2.resize(frame, (300, 300), interpolation=cv2.INTER_LINEAR))
    assert not np.array_equal(linear, resize_like_gluoncv(frame, (300, 300)))  # area filter there
    np.testing.assert_array_equal(preprocess_batch([frame], (300, 300)),
                                  preprocess_batch([frame], (300, 300), "gluoncv"))
    fast = preprocess_batch([frame], (300, 300), "linear")[0]
    np.testing.assert_allclose(fast[0], (linear[..., 2] / 255.0 - 0.485) / 0.229, atol=1e-5)  # BGR -> RGB
    with pytest.raises(ValueError, match="resize"):
        Preprocessor((300, 300), resize="nearest")

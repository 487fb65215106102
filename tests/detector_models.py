"""Cached untrained GluonCV detectors exported to ONNX, shared by the detector tests.

Built on demand under ``tests/.cache/detectors/`` (git-ignored), seeded, so every run and every machine
tests the same weights; the MXNet symbol/params stay next to the ONNX file for parity checks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / ".cache" / "detectors"

MODELS = {  # kind: (GluonCV name, input (w, h), init) -- see export_gluoncv_detector for "he"
    "ssd": ("ssd_300_mobilenet0.25_custom", (300, 300), "default"),
    "yolo3": ("yolo3_mobilenet0.25_custom", (320, 320), "default"),
    "ssd-he": ("ssd_300_mobilenet0.25_custom", (300, 300), "he"),
    "yolo3-he": ("yolo3_mobilenet0.25_custom", (320, 320), "he"),
}
SEED = 7


def exported(kind: str) -> Path:
    """Path of the cached ONNX export of ``kind`` ("ssd" or "yolo3"), exporting it if missing."""
    from edge_app.detectors.export import export_gluoncv_detector

    name, size, init = MODELS[kind]
    path = CACHE / f"{kind}-{size[0]}x{size[1]}-seed{SEED}.onnx"
    params = path.with_name(f"{path.stem}-0000.params")
    if not (path.is_file() and params.is_file()):
        export_gluoncv_detector(name, path, classes=("tray",), input_size=size, seed=SEED, keep_mxnet_files=True,
                                init=init)
    return path


def mxnet_net(onnx_path: Path):
    """The exported MXNet graph with the same weights (a hybridized ``SymbolBlock``)."""
    import mxnet as mx
    from mxnet import gluon

    stem = onnx_path.with_suffix("")
    return gluon.SymbolBlock.imports(f"{stem}-symbol.json", ["data"], f"{stem}-0000.params",
                                     ctx=mx.cpu())


def tray_scene(height: int = 480, width: int = 640, seed: int = 0) -> np.ndarray:
    """A real-looking BGR frame: a textured conveyor, a grey bin, a few trays with shading and noise."""
    import cv2

    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), (70, 80, 90), np.uint8)
    image = cv2.add(image, rng.integers(0, 25, (height, width, 3), dtype=np.uint8))
    for y in range(0, height, 24):
        cv2.line(image, (0, y), (width, y), (55, 60, 66), 2)
    cv2.rectangle(image, (width // 8, height // 6), (7 * width // 8, 5 * height // 6), (150, 150, 140), -1)
    for k in range(6):
        x = width // 8 + 20 + (k % 3) * (width // 4)
        y = height // 6 + 20 + (k // 3) * (height // 3)
        color = tuple(int(c) for c in rng.integers(120, 230, 3))
        cv2.rectangle(image, (x, y), (x + width // 5, y + height // 4), color, -1)
        cv2.rectangle(image, (x, y), (x + width // 5, y + height // 4), (30, 30, 30), 2)
    return cv2.GaussianBlur(image, (3, 3), 0.8)


def with_nms_input_output(model):
    """A copy of the full graph that also outputs the (B, N, 6) tensor entering NMS, so one session run
    gives both the exported NMS result and the exact rows it was computed from."""
    import onnx

    from edge_app.detectors import graph_tools

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.graph.output.append(onnx.helper.make_tensor_value_info(graph_tools.nms_input_tensor(model),
                                                                onnx.TensorProto.FLOAT, None))
    return copy


def assert_same_detections(a: list[np.ndarray], b: list[np.ndarray], min_matched: float = 0.97,
                           iou: float = 0.99, score_atol: float = 1e-4) -> None:
    """GluonCV outputs (ids, scores, boxes) of two runs that differ only by float rounding: per image the
    same number of detections (+-2), and >= ``min_matched`` of them paired one-to-one (Hungarian on IoU)
    with IoU >= ``iou`` and scores within ``score_atol``. Near-tied scores may legitimately swap order."""
    from scipy.optimize import linear_sum_assignment

    for image in range(len(a[0])):
        va, vb = a[0][image, :, 0] >= 0, b[0][image, :, 0] >= 0
        assert abs(int(va.sum()) - int(vb.sum())) <= 2 and va.sum() > 0
        boxes_a, boxes_b = a[2][image][va], b[2][image][vb]
        ix = np.maximum(0, np.minimum(boxes_a[:, None, 2], boxes_b[None, :, 2])
                        - np.maximum(boxes_a[:, None, 0], boxes_b[None, :, 0]))
        iy = np.maximum(0, np.minimum(boxes_a[:, None, 3], boxes_b[None, :, 3])
                        - np.maximum(boxes_a[:, None, 1], boxes_b[None, :, 1]))
        inter = ix * iy
        area_a = (boxes_a[:, 2] - boxes_a[:, 0]) * (boxes_a[:, 3] - boxes_a[:, 1])
        area_b = (boxes_b[:, 2] - boxes_b[:, 0]) * (boxes_b[:, 3] - boxes_b[:, 1])
        ious = inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
        rows, cols = linear_sum_assignment(-ious)
        good = ious[rows, cols] >= iou
        assert good.mean() >= min_matched, f"image {image}: {good.sum()}/{len(rows)} matched"
        score_diff = np.abs(a[1][image, va, 0][rows] - b[1][image, vb, 0][cols])[good]
        assert score_diff.max() <= score_atol

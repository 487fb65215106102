"""Cached untrained GluonCV detectors exported to ONNX, shared by the detector tests.

Built on demand under ``tests/.cache/detectors/`` (git-ignored), seeded, so every run and every machine
tests the same weights; the MXNet symbol/params stay next to the ONNX file for parity checks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / ".cache" / "detectors"

MODELS = {
    "ssd": ("ssd_300_mobilenet0.25_custom", (300, 300)),
    "yolo3": ("yolo3_mobilenet0.25_custom", (320, 320)),
}
SEED = 7


def exported(kind: str) -> Path:
    """Path of the cached ONNX export of ``kind`` ("ssd" or "yolo3"), exporting it if missing."""
    from edge_app.detectors.export import export_gluoncv_detector

    name, size = MODELS[kind]
    path = CACHE / f"{kind}-{size[0]}x{size[1]}-seed{SEED}.onnx"
    params = path.with_name(f"{path.stem}-0000.params")
    if not (path.is_file() and params.is_file()):
        export_gluoncv_detector(name, path, classes=("tray",), input_size=size, seed=SEED, keep_mxnet_files=True)
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

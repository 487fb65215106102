"""The detector interface every backend implements, and the factory that picks a backend.

Data flow: frames (BGR uint8, any sizes) -> ``detect`` -> one :class:`Detections` per frame, boxes in
that frame's pixels, already filtered by the score threshold. Backends batch internally up to
``max_batch`` frames per inference call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from edge_app.config import ModelConfig
from edge_app.detections import Detections
from edge_app.errors import EdgeAppError


@runtime_checkable
class Detector(Protocol):
    class_names: tuple[str, ...]
    input_size: tuple[int, int]
    """Network input (width, height)."""
    max_batch: int
    """Largest batch per inference call; ``detect`` splits longer lists."""

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """One `Detections` per image, boxes in that image's pixels, scores >= the score threshold."""
        ...


def create_detector(model_cfg: ModelConfig, **ort_options: object) -> Detector:
    """The backend named by ``model.backend``, loaded from ``model.path``.

    ``ort_options`` (e.g. ``intra_op_threads``, ``optimization``) go to the ONNX Runtime backend only.

    Raises :class:`EdgeAppError` for a missing / non-ONNX / unexpected model file, and for
    ``tensorrt`` on a machine without ``tensorrt`` and ``pycuda``.
    """
    if model_cfg.backend == "tensorrt":
        from edge_app.detectors.trt_detector import TrtDetector, require_tensorrt

        require_tensorrt()
        return TrtDetector.from_config(model_cfg)
    if model_cfg.backend == "onnxruntime":
        from edge_app.detectors.onnx_detector import OrtDetector

        return OrtDetector.from_config(model_cfg, **ort_options)
    raise EdgeAppError(f"model.backend: expected 'onnxruntime' or 'tensorrt', got {model_cfg.backend!r}")

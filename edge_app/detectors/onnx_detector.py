"""ONNX Runtime backend: batched inference of GluonCV SSD / YOLOv3 graphs on CPU (or CUDA when present).

Graph optimisation: the exporter's graphs fail under ``ORT_ENABLE_ALL`` because of duplicate (empty) node
names, so by default we use ``ORT_ENABLE_BASIC``. ``optimization="all"`` first repairs the graph in memory
(:func:`graph_tools.repair_for_ort`: unique node names, weights no longer graph inputs) and then enables
everything; ``tests/test_graph_tools.py`` proves both give identical outputs and
``edge-app bench detector`` shows the speed of each side by side.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from edge_app.config import ModelConfig
from edge_app.detections import Detections
from edge_app.detectors.decode import decode_batch, outputs_to_rows
from edge_app.detectors.model_file import ModelSpec, inspect_model, load_onnx
from edge_app.detectors.nms import NmsParams
from edge_app.detectors.preprocess import PerThreadPreprocessing
from edge_app.errors import EdgeAppError

log = logging.getLogger(__name__)

Optimization = Literal["basic", "all"]


def ort_providers(prefer_cuda: bool = True) -> list[str]:
    """CUDA first when this onnxruntime build has it, CPU always as the fallback."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    providers = ["CUDAExecutionProvider"] if prefer_cuda and "CUDAExecutionProvider" in available else []
    return providers + ["CPUExecutionProvider"]


def make_session(model, optimization: Optimization = "basic", providers: Sequence[str] | None = None,
                 intra_op_threads: int | None = None):
    """An ``onnxruntime.InferenceSession`` for an in-memory ``onnx.ModelProto``."""
    import onnxruntime as ort

    from edge_app.detectors import graph_tools

    options = ort.SessionOptions()
    options.log_severity_level = 3  # the exporter's initializer-as-input warnings are noise
    if optimization == "all":
        model = graph_tools.repair_for_ort(model)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    else:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    if intra_op_threads:
        options.intra_op_num_threads = intra_op_threads
    return ort.InferenceSession(model.SerializeToString(), options, providers=list(providers or ort_providers()))


class OrtDetector(PerThreadPreprocessing):
    """`Detector` on ONNX Runtime; thread-safe (ORT sessions are; preprocessing buffers are per thread)."""

    def __init__(self, model, spec: ModelSpec, *, score_threshold: float = 0.5, max_batch: int = 8,
                 optimization: Optimization = "basic", providers: Sequence[str] | None = None,
                 intra_op_threads: int | None = None, resize: str = "gluoncv") -> None:
        from edge_app.detectors import graph_tools
        from edge_app.detectors.preprocess import checked_resize_mode

        self.resize = checked_resize_mode(resize)
        self.spec = spec
        self.class_names: tuple[str, ...] = spec.class_names
        self.input_size: tuple[int, int] = spec.input_size
        self.max_batch = int(max_batch)
        self.score_threshold = float(score_threshold)
        self.optimization: Optimization = optimization
        self.nms: NmsParams | None = (graph_tools.read_nms_params(model) if spec.output_layout == "before_nms"
                                      else None)
        try:
            self.session = make_session(model, optimization, providers, intra_op_threads)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise EdgeAppError(f"{spec.path}: model.path: ONNX Runtime cannot load this graph ({exc})") from None
        self.providers = self.session.get_providers()
        self._local = threading.local()
        log.info("detector: onnxruntime %s, %s, input %sx%s (%s resize), classes %s, version %s, optimization %s",
                 self.providers[0], spec.architecture or "unknown architecture", *self.input_size, resize,
                 list(self.class_names), spec.model_version, optimization)

    @classmethod
    def from_path(cls, path: str | Path, model_cfg: ModelConfig | None = None, **kwargs) -> OrtDetector:
        model = load_onnx(Path(path))
        spec = inspect_model(model, Path(path), model_cfg)
        if model_cfg is not None:
            kwargs.setdefault("score_threshold", model_cfg.score_threshold)
            kwargs.setdefault("max_batch", model_cfg.batch_size)
            kwargs.setdefault("resize", model_cfg.resize)
        return cls(model, spec, **kwargs)

    @classmethod
    def from_config(cls, model_cfg: ModelConfig, **kwargs) -> OrtDetector:
        return cls.from_path(model_cfg.path, model_cfg, **kwargs)

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        """Raw outputs for a preprocessed ``(B, 3, h, w)`` float32 batch (no chunking)."""
        return self.session.run(None, {self.spec.input_name: batch})

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        results: list[Detections] = []
        for start in range(0, len(images), self.max_batch):
            chunk = images[start:start + self.max_batch]
            outputs = self.infer(self._preprocessor()(chunk))
            ids, scores, boxes = outputs_to_rows(outputs, self.spec.output_layout, self.nms)
            results.extend(decode_batch(ids, scores, boxes, [im.shape[:2] for im in chunk], self.input_size,
                                        self.score_threshold, self.class_names))
        return results

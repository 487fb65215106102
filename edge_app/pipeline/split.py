"""Split a detector into "preprocess one frame" (decode thread) and "infer a batch" (inference worker).

Why: resizing a frame to the network input and normalising it costs ~0.5-1 ms of one core per frame.
Done inside ``detect()`` on the inference thread, it runs *between* inference calls, while the cores
that ONNX Runtime uses sit idle - on a 2-core CPU that alone costs ~10 % of throughput. Done on the
stream's decode thread, it overlaps with the previous batch's inference, and the worker only runs the session
on tensors stacked for it (`stacking`).

The same goes for the other end: turning the raw outputs into `Detections` (score threshold, boxes back to frame
pixels; NMS too for a graph cut before NMS) costs ~0.1 ms per frame, 2 % of the inference time. The worker hands
each frame's row of the raw outputs on as `PendingDetections`, and the stream's post-processing thread decodes it.

`OrtPreparedDetector` adapts the ONNX Runtime backend (`edge_app.detectors.onnx_detector.OrtDetector`)
using its public pieces (``infer``, ``spec``, ``nms``, and the package's ``Preprocessor`` and
``decode_batch``), so results are identical to ``detect()``. Other backends (TensorRT keeps its own
pinned buffers) are used as they are, through ``detect()``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from edge_app.detections import Detections


@runtime_checkable
class PreparedDetector(Protocol):
    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """One BGR frame -> its ``(3, h, w)`` float32 network input."""
        ...

    def detect_prepared(self, batch: np.ndarray, frame_sizes: Sequence[tuple[int, int]]) -> list[Detections]:
        """A stacked ``(B, 3, h, w)`` batch -> one `Detections` per frame, boxes in frame pixels."""
        ...

    def detect_pending(self, batch: np.ndarray, frame_sizes: Sequence[tuple[int, int]]) -> list[PendingDetections]:
        """Like `detect_prepared`, but each frame's outputs are decoded later, by `PendingDetections.resolve`."""
        ...

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]: ...


@dataclass(frozen=True, slots=True)
class PendingDetections:
    """One frame's share of a batch's raw detector outputs, decoded into `Detections` by whoever calls `resolve`."""

    detector: OrtPreparedDetector
    outputs: Sequence[np.ndarray]
    row: int
    frame_hw: tuple[int, int]

    def resolve(self) -> Detections:
        return self.detector.decode_row(self.outputs, self.row, self.frame_hw)


class OrtPreparedDetector:
    """`PreparedDetector` over an ``OrtDetector``; every other attribute is the wrapped detector's."""

    def __init__(self, detector: Any) -> None:
        self.detector = detector
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.detector, name)

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        # The detector's own per-thread preprocessor: its model's mean/std and its ``resize`` mode.
        return self.detector._preprocessor()([image])[0]

    def detect_pending(self, batch: np.ndarray, frame_sizes: Sequence[tuple[int, int]]) -> list[PendingDetections]:
        step = self.detector.max_batch
        pending: list[PendingDetections] = []
        for start in range(0, len(batch), step):
            outputs = self.detector.infer(batch[start:start + step])
            pending.extend(PendingDetections(self, outputs, row, tuple(hw))  # type: ignore[arg-type]
                           for row, hw in enumerate(frame_sizes[start:start + step]))
        return pending

    def decode_row(self, outputs: Sequence[np.ndarray], row: int, frame_hw: tuple[int, int]) -> Detections:
        """Row ``row`` of a batch's raw outputs -> that frame's `Detections` (safe on any thread)."""
        from edge_app.detectors.decode import decode_batch, outputs_to_rows

        det = self.detector
        ids, scores, boxes = outputs_to_rows([o[row:row + 1] for o in outputs], det.spec.output_layout, det.nms)
        return decode_batch(ids, scores, boxes, [frame_hw], det.input_size, det.score_threshold, det.class_names)[0]

    def detect_prepared(self, batch: np.ndarray, frame_sizes: Sequence[tuple[int, int]]) -> list[Detections]:
        return [pending.resolve() for pending in self.detect_pending(batch, frame_sizes)]

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        return self.detector.detect(images)


def prepared(detector: Any) -> Any:
    """``detector`` wrapped as a `PreparedDetector` when it is an ONNX Runtime detector, else unchanged."""
    if isinstance(detector, PreparedDetector):
        return detector
    if all(hasattr(detector, a) for a in ("infer", "spec", "nms", "score_threshold", "class_names", "max_batch")):
        return OrtPreparedDetector(detector)
    return detector

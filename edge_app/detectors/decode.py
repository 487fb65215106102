"""Turn the network's output tensors into per-frame :class:`Detections`.

GluonCV detectors end with ``box_nms`` + ``slice_axis`` and return, per image, ``K`` rows sorted by score:
class id ``(B, K, 1)``, score ``(B, K, 1)``, box ``(B, K, 4)`` corners in network-input pixels. Rows that
NMS removed, and padding, have id ``-1`` and score ``-1``. A graph cut before NMS returns the ``(B, N, 6)``
rows that enter NMS instead; :func:`outputs_to_rows` runs the host NMS on those first, so both layouts end
in the same decoding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge_app.detections import Detections
from edge_app.detectors.model_file import OutputLayout
from edge_app.detectors.nms import NmsParams, batched_box_nms
from edge_app.detectors.preprocess import boxes_to_frame


def outputs_to_rows(outputs: Sequence[np.ndarray], layout: OutputLayout,
                    nms: NmsParams | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, scores, boxes)`` after NMS from either output layout."""
    if layout == "gluoncv":
        ids, scores, boxes = outputs
        return np.asarray(ids), np.asarray(scores), np.asarray(boxes)
    if nms is None:
        raise ValueError("a graph cut before NMS needs its NmsParams to be decoded")
    return batched_box_nms(np.asarray(outputs[0]), nms)


def decode_batch(ids: np.ndarray, scores: np.ndarray, boxes: np.ndarray, frame_sizes: Sequence[tuple[int, int]],
                 input_size: tuple[int, int], score_threshold: float,
                 class_names: Sequence[str]) -> list[Detections]:
    """Per frame: keep real rows (id >= 0) scoring >= ``score_threshold``, map boxes to frame pixels
    (``frame_sizes`` are ``(H, W)``), and drop boxes that have no area left after clipping to the frame."""
    ids = np.asarray(ids).reshape(len(frame_sizes), -1)
    scores = np.asarray(scores, np.float32).reshape(len(frame_sizes), -1)
    boxes = np.asarray(boxes, np.float32).reshape(len(frame_sizes), -1, 4)
    result = []
    for i, frame_hw in enumerate(frame_sizes):
        keep = (ids[i] >= 0) & (scores[i] >= score_threshold)
        mapped = boxes_to_frame(boxes[i][keep], input_size, frame_hw)
        has_area = (mapped[:, 2] > mapped[:, 0]) & (mapped[:, 3] > mapped[:, 1])
        result.append(Detections(mapped[has_area], scores[i][keep][has_area],
                                 ids[i][keep][has_area].astype(np.int32), tuple(class_names)))
    return result

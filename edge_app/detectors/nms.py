"""Host-side non-maximum suppression that reproduces the NMS inside the exported GluonCV graphs.

Why on the host: TensorRT cannot build the ONNX ``NonMaxSuppression`` + scatter/gather tail that
MXNet's exporter emits for ``box_nms``, so the TensorRT backend runs the graph cut just before it
(:func:`edge_app.detectors.graph_tools.cut_before_nms`) and finishes here.

What the exported tail computes (``mxnet/onnx/mx2onnx/_op_translations``, ``convert_contrib_box_nms``),
per image, on rows ``[class_id, score, x1, y1, x2, y2]``:

1. candidates are rows with ``score > valid_thresh`` (ONNX ``score_threshold`` is strict);
2. greedy NMS in descending score order (ties: lower row index first), class-agnostic, a candidate
   is suppressed when its IoU with an already kept box is ``> overlap_thresh``;
3. at most ``topk`` boxes are kept (ONNX ``max_output_boxes_per_class``; one "class" here);
4. kept rows in score order, then ``-1`` rows to the original row count; GluonCV then slices the first
   ``post_nms`` rows.

``topk_mode="mxnet"`` gives native MXNet ``box_nms`` semantics instead: only the ``topk`` best-scoring
candidates enter NMS (a pre-NMS cap rather than a cap on survivors). The two agree whenever fewer than
``topk`` candidates pass ``valid_thresh``, or when the first ``topk`` candidates keep >= ``post_nms`` boxes.

IoU uses the ONNX Runtime / MXNet corner formula without the "+1" pixel convention::

    IoU(a, b) = area(a ∩ b) / (area(a) + area(b) - area(a ∩ b)),  area = max(0, x2-x1) * max(0, y2-y1)

ONNX Runtime also tolerates flipped corners (x1 > x2) by taking min/max per axis; so do we.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class NmsParams:
    """The constants of one exported ``box_nms``; read from the graph by ``graph_tools.read_nms_params``."""

    overlap_thresh: float = 0.45
    valid_thresh: float = 0.01
    topk: int = 400
    post_nms: int = 100
    topk_mode: Literal["onnx", "mxnet"] = "onnx"


def _corners(boxes: np.ndarray) -> np.ndarray:
    x1 = np.minimum(boxes[:, 0], boxes[:, 2])
    x2 = np.maximum(boxes[:, 0], boxes[:, 2])
    y1 = np.minimum(boxes[:, 1], boxes[:, 3])
    y2 = np.maximum(boxes[:, 1], boxes[:, 3])
    return np.stack([x1, y1, x2, y2], 1)


def nms_indices(boxes: np.ndarray, scores: np.ndarray, params: NmsParams) -> np.ndarray:
    """Row indices kept by NMS, best score first. ``boxes`` ``(N, 4)`` corners, ``scores`` ``(N,)``."""
    scores = np.asarray(scores, np.float32).reshape(-1)
    candidates = np.flatnonzero(scores > np.float32(params.valid_thresh))
    # Stable sort on -score: equal scores keep ascending row order, as ONNX Runtime's priority queue does.
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    if params.topk_mode == "mxnet" and params.topk > 0:
        order = order[: params.topk]
    limit = params.topk if params.topk > 0 else len(order)
    limit = min(limit, params.post_nms) if params.post_nms > 0 else limit
    if len(order) == 0 or limit == 0:
        return np.zeros(0, np.int64)
    corners = _corners(np.asarray(boxes, np.float32)[order])
    areas = (corners[:, 2] - corners[:, 0]) * (corners[:, 3] - corners[:, 1])
    thresh = np.float32(params.overlap_thresh)
    # Greedy NMS in blocks of BLOCK candidates (in score order): one vectorised IoU matrix per block
    # (against the block itself and against boxes kept so far), then a cheap boolean sweep. Same decisions
    # as the textbook loop -- a box is dropped iff an earlier *kept* box overlaps it by more than the
    # threshold -- but numpy does O(block^2) work per call instead of one call per kept box.
    kept: list[int] = []
    for start in range(0, len(order), BLOCK):
        block = np.arange(start, min(start + BLOCK, len(order)))
        alive = np.ones(len(block), bool)
        if kept:
            alive &= ~(_iou_matrix(corners, areas, np.asarray(kept), block) > thresh).any(axis=0)
        overlaps = _iou_matrix(corners, areas, block, block) > thresh
        for i in np.flatnonzero(alive):
            if not alive[i]:
                continue
            kept.append(int(block[i]))
            if len(kept) >= limit:
                return order[np.asarray(kept, np.int64)]
            alive[i + 1:] &= ~overlaps[i, i + 1:]
    return order[np.asarray(kept, np.int64)]


BLOCK = 128


def _iou_matrix(corners: np.ndarray, areas: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """IoU of ``corners[rows]`` x ``corners[cols]`` in float32, in ONNX Runtime's operation order."""
    a, b = corners[rows], corners[cols]
    inter_w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    inter_h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.maximum(inter_w, 0) * np.maximum(inter_h, 0)
    union = areas[rows][:, None] + areas[cols][None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, np.float32(0))


def box_nms(rows: np.ndarray, params: NmsParams) -> np.ndarray:
    """GluonCV's post-NMS output for one image.

    ``rows`` ``(N, 6)`` ``[class_id, score, x1, y1, x2, y2]`` (the tensor entering the exported NMS);
    returns ``(post_nms or N, 6)``: kept rows in score order, then rows of ``-1`` (GluonCV's padding).
    """
    rows = np.asarray(rows, np.float32).reshape(-1, 6)
    keep = nms_indices(rows[:, 2:6], rows[:, 1], params)
    out_rows = min(params.post_nms, len(rows)) if params.post_nms > 0 else len(rows)
    out = np.full((out_rows, 6), -1.0, np.float32)
    out[: len(keep)] = rows[keep]
    return out


def batched_box_nms(rows: np.ndarray, params: NmsParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`box_nms` over a batch ``(B, N, 6)``; returns GluonCV's ``(ids, scores, boxes)`` outputs
    ``(B, K, 1)``, ``(B, K, 1)``, ``(B, K, 4)``, exactly as the full exported graph does."""
    rows = np.asarray(rows, np.float32)
    if len(rows) == 0:
        width = min(params.post_nms, rows.shape[1]) if params.post_nms > 0 else rows.shape[1]
        out = np.zeros((0, width, 6), np.float32)
    else:
        out = np.stack([box_nms(r, params) for r in rows])
    return out[..., 0:1], out[..., 1:2], out[..., 2:6]

"""Evaluate an exported ONNX detector on held-out images through the edge app's own ONNX Runtime backend.

Evaluating the ONNX file (not the MXNet net) through ``edge_app.detectors.OrtDetector`` measures exactly what
runs on the edge: same preprocessing (GluonCV's stretch resize + ImageNet normalisation), same exported NMS,
same box decoding back to frame pixels.

Metrics:

* VOC07 mAP@0.5 (``gluoncv.utils.metrics.voc_detection.VOC07MApMetric``: per class, detections sorted by
  score, a detection is a true positive when its IoU with a not-yet-matched ground-truth box is >= 0.5; AP is
  the mean of the interpolated precision at recall 0, 0.1, ..., 1; mAP averages the classes). This is the
  headline figure (GluonCV's SSD/YOLO training scripts report it). Know its cliff: the point at recall 1.0 is
  1/11 of the score and is 0 unless *every* ground-truth box of the split is found at some score, so on a
  split of 1665 boxes with one box never found (a tray half out of the frame, say) the mAP cannot exceed
  10/11 = 0.909;
* VOC2010+ mAP@0.5 (``VOCMApMetric``: the area under the interpolated precision-recall curve), which has no
  such cliff, reported next to it as ``map_area``;
* per-image errors at the operating threshold (default 0.5, the app's ``score_threshold``): false negatives
  (missed trays) and false positives, listed worst first so the worst frames can be looked at;
* FP32 vs FP16: mAP of each on the same images and the largest box-coordinate difference between their
  matched detections (pixels).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_app.detections import Detections
from training.data import Sample

MAP_SCORE_THRESHOLD = 0.01
"""Detections kept for mAP: the PR curve needs the low-score tail too."""


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), corners format."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


@dataclass
class ImageErrors:
    path: str
    gt: int
    tp: int
    fp: int
    fn: int

    @property
    def errors(self) -> int:
        return self.fp + self.fn


def image_errors(path: str, gt: np.ndarray, det: Detections, iou_thresh: float = 0.5) -> ImageErrors:
    """Greedy score-ordered matching (class-aware) at the operating threshold."""
    order = np.argsort(-det.scores)
    gt_boxes, gt_cls = gt[:, :4], gt[:, 4].astype(int)
    used = np.zeros(len(gt), bool)
    ious = iou_matrix(det.boxes[order], gt_boxes)
    tp = 0
    for row, k in enumerate(order):
        candidates = np.where((~used) & (gt_cls == det.class_ids[k]) & (ious[row] >= iou_thresh))[0]
        if len(candidates):
            used[candidates[np.argmax(ious[row, candidates])]] = True
            tp += 1
    return ImageErrors(path, len(gt), tp, len(det) - tp, int((~used).sum()))


@dataclass
class EvalResult:
    model: str
    map: float
    ap_per_class: dict[str, float]
    images: int
    gt_boxes: int
    map_area: float = 0.0
    """VOC2010+ (area under the interpolated PR curve) mAP@0.5; ``map`` is VOC07 11-point."""
    max_recall: float = 0.0
    """Share of the ground-truth boxes found at any score >= MAP_SCORE_THRESHOLD (VOC07's recall-1.0 point)."""
    errors: list[ImageErrors] = field(default_factory=list)
    pr: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    detections: list[Detections] = field(default_factory=list, repr=False)

    def totals(self) -> dict[str, int]:
        return {k: int(sum(getattr(e, k) for e in self.errors)) for k in ("tp", "fp", "fn")}

    def worst(self, n: int = 10) -> list[ImageErrors]:
        return sorted((e for e in self.errors if e.errors), key=lambda e: (-e.errors, e.path))[:n]

    def to_dict(self, worst: int = 20) -> dict:
        return {"model": self.model, "map": round(self.map, 4), "map_area": round(self.map_area, 4),
                "max_recall": round(self.max_recall, 4),
                "ap_per_class": {k: round(v, 4) for k, v in self.ap_per_class.items()},
                "images": self.images, "gt_boxes": self.gt_boxes, **self.totals(),
                "worst_images": [e.__dict__ for e in self.worst(worst)]}


def load_detector(model: Path, score_threshold: float = MAP_SCORE_THRESHOLD, resize: str = "gluoncv"):
    from edge_app.detectors.onnx_detector import OrtDetector

    return OrtDetector.from_path(model, score_threshold=score_threshold, max_batch=8, resize=resize)


def evaluate_onnx(model: Path, samples: Sequence[Sample], *, operating_threshold: float = 0.5,
                  class_names: Sequence[str] | None = None, progress: bool = False,
                  resize: str = "gluoncv") -> EvalResult:
    """Run the ONNX model on every sample; VOC07 mAP@0.5 + per-image errors at the operating threshold."""
    import cv2
    from gluoncv.utils.metrics.voc_detection import VOC07MApMetric, VOCMApMetric
    from tqdm import tqdm

    detector = load_detector(model, resize=resize)
    names = list(class_names or detector.class_names)
    metric = VOC07MApMetric(iou_thresh=0.5, class_names=names)
    metric_area = VOCMApMetric(iou_thresh=0.5, class_names=names)
    result = EvalResult(str(model), 0.0, {}, len(samples), int(sum(len(s.boxes) for s in samples)))
    for sample in tqdm(samples, desc=f"eval {Path(model).name}", disable=not progress, leave=False):
        image = cv2.imread(sample.path, cv2.IMREAD_COLOR)
        if image is None:
            from edge_app.errors import EdgeAppError

            raise EdgeAppError(f"{sample.path}: cannot read image")
        det = detector.detect([image])[0]
        result.detections.append(det)
        gt = sample.boxes.reshape(-1, 5)
        for m in (metric, metric_area):
            m.update(det.boxes[None], det.class_ids[None, :, None].astype(np.float32), det.scores[None, :, None],
                     gt[None, :, :4], gt[None, :, 4:5])
        result.errors.append(image_errors(sample.path, gt, det.above(operating_threshold)))
    metric_names, values = metric.get()
    result.map = float(values[-1]) if len(samples) else 0.0
    result.map_area = float(metric_area.get()[1][-1]) if len(samples) else 0.0
    result.ap_per_class = {n: float(v) for n, v in zip(metric_names[:-1], values[:-1], strict=True)
                           if not np.isnan(v)}
    recalls, precisions = metric._recall_prec()
    for name, rec, prec in zip(names, recalls, precisions, strict=False):
        if rec is not None and prec is not None:
            result.pr[name] = ([float(v) for v in rec], [float(v) for v in np.nan_to_num(prec)])
    finite = [float(np.max(rec)) for rec in recalls if rec is not None and len(rec)]
    result.max_recall = float(np.mean(finite)) if finite else 0.0
    return result


def max_box_difference(a: Sequence[Detections], b: Sequence[Detections], threshold: float = 0.5) -> dict:
    """Largest |coordinate| difference (px) between matched detections of two models on the same images.

    Each detection of ``a`` above ``threshold`` is paired with the highest-IoU detection of ``b``; detections
    left without a partner (IoU < 0.5) are counted as ``unmatched``.
    """
    worst, unmatched, pairs, score_diff = 0.0, 0, 0, 0.0
    for da, db in zip(a, b, strict=True):
        da, db = da.above(threshold), db.above(threshold)
        ious = iou_matrix(da.boxes, db.boxes)
        for i in range(len(da)):
            j = int(np.argmax(ious[i])) if ious.shape[1] else -1
            if j < 0 or ious[i, j] < 0.5:
                unmatched += 1
                continue
            pairs += 1
            worst = max(worst, float(np.abs(da.boxes[i] - db.boxes[j]).max()))
            score_diff = max(score_diff, abs(float(da.scores[i] - db.scores[j])))
        unmatched += max(0, len(db) - len(da))
    return {"max_box_diff_px": round(worst, 3), "max_score_diff": round(score_diff, 4), "matched": pairs,
            "unmatched": unmatched}


def plot_pr(results: dict[str, EvalResult], out: Path) -> Path:
    """Precision-recall curves (one line per split/model and class) with the AP in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    for label, res in results.items():
        for cls, (rec, prec) in res.pr.items():
            ax.plot(rec, prec, label=f"{label} {cls} (AP {res.ap_per_class.get(cls, float('nan')):.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.0)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title("Precision-recall, IoU 0.5")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def compare_fp16(fp32: Path, fp16: Path, samples: Sequence[Sample]) -> dict:
    r32 = evaluate_onnx(fp32, samples)
    r16 = evaluate_onnx(fp16, samples)
    return {"fp32_map": round(r32.map, 4), "fp16_map": round(r16.map, 4),
            **max_box_difference(r32.detections, r16.detections), "images": len(samples)}


def write_json(path: Path, data: dict) -> None:
    from training.lst import atomic_write_text

    atomic_write_text(Path(path), json.dumps(data, indent=1))

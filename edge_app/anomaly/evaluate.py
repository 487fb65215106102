"""Evaluate a model directory on a labelled test folder: metrics, ROC plot and heat-map overlays.

Image level: AUROC of the scores; precision, recall and F1 at the model's threshold (0.5 normalized).
Pixel level: AUROC of the raw maps against the ground-truth masks over all test images (normal images
contribute all-negative masks), as in the MVTec AD protocol, at the model's ROI resolution.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_app.anomaly import data as datasets
from edge_app.anomaly.metrics import auroc, confusion_at, f1_optimal_threshold, roc_curve
from edge_app.anomaly.runtime import AnomalyModel, overlay, write_atomic, write_png


@dataclass
class EvalReport:
    n_normal: int
    n_anomalous: int
    image_auroc: float
    pixel_auroc: float
    precision: float
    recall: float
    f1: float
    best_f1: float
    """F1 at the F1-optimal threshold on this test set (an oracle, for reference only)."""
    registration_fallbacks: int
    mean_predict_ms: float

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def summarize(labels: np.ndarray, scores: np.ndarray, threshold: float, pixel_labels: list[np.ndarray],
              pixel_scores: list[np.ndarray]) -> dict[str, float]:
    """Image AUROC, pixel AUROC, P/R/F1 at ``threshold`` and the oracle best F1."""
    conf = confusion_at(labels, scores, threshold)
    pix_labels = np.concatenate([m.ravel() for m in pixel_labels]) if pixel_labels else np.zeros(0, bool)
    pix_scores = np.concatenate([m.ravel() for m in pixel_scores]) if pixel_scores else np.zeros(0)
    return {"image_auroc": auroc(labels, scores),
            "pixel_auroc": auroc(pix_labels, pix_scores) if pix_labels.any() else float("nan"),
            "precision": conf.precision, "recall": conf.recall, "f1": conf.f1,
            "best_f1": f1_optimal_threshold(labels, scores)[1]}


def plot_roc(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str) -> None:
    """ROC curves ``name -> (fpr, tpr, auc)`` as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    for name, (fpr, tpr, area) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUROC {area:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def evaluate_model(model_dir: Path, data: Path, out: Path | None = None, max_overlays: int = 200) -> EvalReport:
    """Score every test image, write ``report.json``, ``roc.png`` and ``overlays/*.png`` under ``out``."""
    import time

    model = AnomalyModel(model_dir)
    items = datasets.eval_items(data)
    out = out or model_dir / "eval"
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    labels, scores, pixel_labels, pixel_scores, rows = [], [], [], [], []
    fallbacks = 0
    elapsed = 0.0
    for item in items:
        image = datasets.read_image(item.path)
        started = time.perf_counter()
        pred = model.predict(image, str(item.path))
        elapsed += time.perf_counter() - started
        fallbacks += not pred.registered
        gt = datasets.read_mask(item.mask_path, model.image_size, model.roi, model.size)
        labels.append(item.label)
        scores.append(pred.score)
        if item.label == 0 or item.mask_path is not None:
            pixel_labels.append(gt)
            pixel_scores.append(pred.raw_map)
        rows.append({"path": str(item.path), "label": item.label, "defect": item.defect, **pred.to_json()})
        if len(rows) <= max_overlays:
            roi_image = datasets.crop_and_resize(image, model.roi, model.size)
            write_png(out / "overlays" / f"{item.defect}_{item.path.stem}.png", overlay(roi_image, pred.anomaly_map))
    y, s = np.array(labels), np.array(scores)
    summary = summarize(y, s, 0.5, pixel_labels, pixel_scores)
    fpr, tpr, _ = roc_curve(y, s)
    plot_roc(out / "roc.png", {"image": (fpr, tpr, summary["image_auroc"])}, f"ROC: {model_dir.name}")
    report = EvalReport(n_normal=int((y == 0).sum()), n_anomalous=int((y == 1).sum()),
                        registration_fallbacks=fallbacks, mean_predict_ms=1000 * elapsed / len(items), **summary)
    write_atomic(out / "report.json", json.dumps({"summary": report.to_dict(), "images": rows}, indent=2).encode())
    return report

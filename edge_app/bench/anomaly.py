"""`edge-app bench anomaly`: the anomaly model next to a plain baseline on the sim parts (or any dataset).

Per part, both methods are trained on the same ``--n-train`` normal images and scored on the same test set:

* **ours**: ECC registration + filter-bank Gaussians + Mahalanobis map (edge_app/anomaly), threshold from held-out
  normal scores; inference through ONNX Runtime on CPU;
* **baseline**: absolute difference to the mean normal image (grey-level mean over channels, Gaussian-smoothed,
  image score = max), threshold set by the same held-out-percentile rule.

Reported: image AUROC, pixel AUROC, precision / recall / F1 at each method's own threshold, training time
(``--n-train`` images and ``--timing-images`` images at 256x256), and inference milliseconds per ROI (ONNX
graph alone, and registration on the host).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer


def bench_anomaly(
    data: Path | None = typer.Option(None, help="Dataset root with one folder per part (default: render sim parts)"),
    parts: str = typer.Option("carrier,surface,label", help="Parts to benchmark (folders under the data root)"),
    n_train: int = typer.Option(20, help="Normal training images per part"),
    timing_images: int = typer.Option(50, help="Also time training on this many normal images (0: skip)"),
    out: Path = typer.Option(Path("out/bench-anomaly"), help="Work folder (sim data, models, results.json)"),
    runs: int = typer.Option(50, help="Timed inference runs per part"),
    threads: int = typer.Option(0, help="ONNX Runtime intra-op threads (0: one per core)"),
) -> None:
    """Anomaly inspection accuracy and speed next to the mean-image baseline."""
    from rich.console import Console
    from rich.table import Table

    from edge_app.anomaly import data as datasets
    from edge_app.anomaly.evaluate import evaluate_model
    from edge_app.anomaly.train import TrainOptions, train_from_images
    from edge_app.errors import EdgeAppError

    console = Console(width=max(Console().width, 170))
    chosen = [p.strip() for p in parts.split(",") if p.strip()]
    if data is None:
        from sim.anomaly_parts import write_dataset

        data = out / "data"
        missing = [p for p in chosen if not (data / p / "test").is_dir()]
        if missing:
            console.print(f"rendering sim parts {', '.join(missing)} into {data}")
            write_dataset(data, tuple(missing), n_train=max(n_train, timing_images), n_test_normal=20,
                          n_test_abnormal=30)
    results = []
    for part in chosen:
        root = data / part
        if not root.is_dir():
            raise EdgeAppError(f"{root}: no such part folder")
        paths = datasets.list_images(datasets.resolve_normal_dir(root))
        if len(paths) < n_train:
            raise EdgeAppError(f"{root}: {len(paths)} normal images, --n-train asks for {n_train}")
        normal = datasets.load_images(paths[:n_train], None, 256)
        model_dir = out / "models" / part
        started = time.perf_counter()
        train_from_images(normal.images, model_dir, image_size=normal.original_size, options=TrainOptions(),
                          source=str(root))
        train_s = time.perf_counter() - started
        report = evaluate_model(model_dir, root, out / "eval" / part, max_overlays=0)
        timing_s = None
        if timing_images and len(paths) >= timing_images:
            many = datasets.load_images(paths[:timing_images], None, 256)
            started = time.perf_counter()
            train_from_images(many.images, out / "models" / f"{part}-{timing_images}", options=TrainOptions(),
                              image_size=many.original_size)
            timing_s = time.perf_counter() - started
        onnx_ms, reg_ms = _inference_ms(model_dir, normal.images[0], runs, threads)
        base = _baseline(normal.images, root)
        results.append({"part": part, "ours": {**report.to_dict(), "train_s": train_s, "train_s_many": timing_s,
                                               "onnx_ms": onnx_ms, "registration_ms": reg_ms},
                        "baseline": base})
        console.print(f"{part}: done")

    table = Table(title=f"Anomaly inspection, {n_train} normal training images per part (256x256 ROI)")
    for col in ("part", "method", "image AUROC", "pixel AUROC", "precision", "recall", "F1",
                f"train s ({n_train})", f"train s ({timing_images})", "ONNX ms/ROI", "registration ms"):
        table.add_column(col, justify="left" if col in ("part", "method") else "right")
    for r in results:
        o, b = r["ours"], r["baseline"]
        many = f"{o['train_s_many']:.1f}" if o["train_s_many"] is not None else "-"
        table.add_row(r["part"], "ours", f"{o['image_auroc']:.3f}", f"{o['pixel_auroc']:.3f}", f"{o['precision']:.3f}",
                      f"{o['recall']:.3f}", f"{o['f1']:.3f}", f"{o['train_s']:.1f}", many, f"{o['onnx_ms']:.1f}",
                      f"{o['registration_ms']:.1f}")
        table.add_row("", "baseline: |x - mean normal|", f"{b['image_auroc']:.3f}", f"{b['pixel_auroc']:.3f}",
                      f"{b['precision']:.3f}", f"{b['recall']:.3f}", f"{b['f1']:.3f}", f"{b['train_s']:.1f}", "-",
                      f"{b['infer_ms']:.1f}", "-")
    console.print(table)
    load = _load_average()
    console.print(f"targets: image AUROC >= 0.95, pixel AUROC >= 0.90, F1 >= 0.85, training <= 60 s for 50 images, "
                  f"inference <= 20 ms per ROI. Load average during the run: {load}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"n_train": n_train, "load_average": load, "parts": results},
                                                 indent=2, default=float), encoding="utf-8")


def _load_average() -> str:
    import os

    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _inference_ms(model_dir: Path, image: object, runs: int, threads: int) -> tuple[float, float]:
    """Median milliseconds of the ONNX graph on one ROI, and of ECC registration on the host."""
    import numpy as np

    from edge_app.anomaly.features import to_batch
    from edge_app.anomaly.runtime import AnomalyModel

    model = AnomalyModel(model_dir, threads=threads)
    feed = {"image": to_batch([image]), "valid": np.ones((1, 1, model.size, model.size), np.float32)}
    for _ in range(3):
        model.session.run(None, feed)
    onnx_times, reg_times = [], []
    for _ in range(runs):
        started = time.perf_counter()
        model.session.run(None, feed)
        onnx_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        model.registrar.align(image)
        reg_times.append(time.perf_counter() - started)
    return 1000 * float(np.median(onnx_times)), 1000 * float(np.median(reg_times))


def _baseline(normal: list, root: Path) -> dict:
    """Absolute difference to the mean normal image; threshold from 5-fold held-out normal scores."""
    import cv2
    import numpy as np

    from edge_app.anomaly import data as datasets
    from edge_app.anomaly.evaluate import summarize
    from edge_app.anomaly.threshold import calibrate

    def maps(images: np.ndarray, mean: np.ndarray) -> np.ndarray:
        diff = np.abs(images.astype(np.float32) - mean).mean(axis=3)
        return np.stack([cv2.GaussianBlur(d, (0, 0), 4.0) for d in diff])

    started = time.perf_counter()
    stack = np.stack(normal).astype(np.float32)
    folds = np.arange(len(stack)) % 5
    heldout = np.zeros(len(stack))
    for k in range(5):
        held = maps(stack[folds == k], stack[folds != k].mean(axis=0))
        heldout[folds == k] = held.reshape(len(held), -1).max(axis=1)
    mean = stack.mean(axis=0)
    calibration = calibrate(heldout)
    train_s = time.perf_counter() - started
    labels, scores, pix_labels, pix_scores, times = [], [], [], [], []
    for item in datasets.eval_items(root):
        image = datasets.crop_and_resize(datasets.read_image(item.path), None, 256)
        started = time.perf_counter()
        m = maps(image[None], mean)[0]
        times.append(time.perf_counter() - started)
        labels.append(item.label)
        scores.append(float(m.max()))
        if item.label == 0 or item.mask_path is not None:
            pix_labels.append(datasets.read_mask(item.mask_path, (image.shape[1], image.shape[0]), None, 256))
            pix_scores.append(m)
    summary = summarize(np.array(labels), np.array(scores), calibration.threshold, pix_labels, pix_scores)
    return {**summary, "train_s": train_s, "infer_ms": 1000 * float(np.median(times))}

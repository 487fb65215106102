"""`edge-app bench detector`: latency and throughput of each detector backend, batch sizes 1..8.

Every backend available on this machine runs the same model on the same synthetic frames, through the
full ``detect()`` path the app uses (GluonCV preprocessing, inference, decoding to frame pixels):

* ``ort-basic``   ONNX Runtime, exported graph as-is, ``ORT_ENABLE_BASIC`` -- the baseline;
* ``ort-all``     ONNX Runtime, graph repaired (unique node names, weights out of the inputs), ``ORT_ENABLE_ALL``;
* ``ort-cut+nms`` ONNX Runtime on the graph cut before NMS + host NMS: what the TensorRT path pays on the CPU;
* ``trt-fp16``    TensorRT FP16 engine (only where tensorrt + pycuda + a GPU exist).

Backends are interleaved per batch size (not run one after the other) so load from other processes on
a shared machine hits them alike. Reported per (backend, batch): mean / p50 / p95 latency of one
``detect()`` call, images per second, and the ratio to ``ort-basic`` at the same batch size.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from edge_app.errors import EdgeAppError

DEFAULT_MODEL = Path("models/tray_detector.onnx")


def synthetic_frames(count: int, width: int, height: int, seed: int = 0) -> list[np.ndarray]:
    """Camera-sized BGR frames with some structure (speed does not depend on content, resizing cost does)."""
    import cv2

    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        frame = rng.integers(40, 90, (height, width, 3), dtype=np.uint8)
        for _ in range(6):
            x, y = int(rng.integers(0, width - width // 5)), int(rng.integers(0, height - height // 4))
            color = tuple(int(c) for c in rng.integers(120, 230, 3))
            cv2.rectangle(frame, (x, y), (x + width // 5, y + height // 4), color, -1)
        frames.append(frame)
    return frames


def _backends(model_path: Path, threads: int | None, max_batch: int) -> dict[str, object]:
    import onnx

    from edge_app.detectors import graph_tools
    from edge_app.detectors.onnx_detector import OrtDetector
    from edge_app.detectors.trt_detector import TrtDetector, require_tensorrt

    common = {"score_threshold": 0.5, "max_batch": max_batch, "intra_op_threads": threads}
    backends: dict[str, object] = {
        "ort-basic": OrtDetector.from_path(model_path, optimization="basic", **common),
        "ort-all": OrtDetector.from_path(model_path, optimization="all", **common),
    }
    model = onnx.load(model_path)
    if not graph_tools.is_cut_before_nms(model):
        cut = graph_tools.cut_before_nms(model)
        from edge_app.detectors.model_file import inspect_model

        backends["ort-cut+nms"] = OrtDetector(cut, inspect_model(cut, model_path), optimization="all", **common)
    try:
        require_tensorrt()
    except EdgeAppError:
        return backends
    backends["trt-fp16"] = TrtDetector(model_path, score_threshold=0.5, max_batch=max_batch)
    return backends


def _measure(detector, frames: list[np.ndarray], iterations: int, warmup: int) -> np.ndarray:
    for _ in range(warmup):
        detector.detect(frames)
    times = np.empty(iterations)
    for i in range(iterations):
        start = time.perf_counter()
        detector.detect(frames)
        times[i] = time.perf_counter() - start
    return times


def bench_detector(
    model: Annotated[Path | None, typer.Option(help="ONNX detector (default: models/tray_detector.onnx if it "
                                                    "exists, else an untrained SSD exported once)")] = None,
    batches: Annotated[str, typer.Option(help="Batch sizes: comma list or range, e.g. 1-8 or 1,2,4,8")] = "1-8",
    iterations: Annotated[int, typer.Option(min=1, help="Timed detect() calls per backend and batch")] = 20,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed calls first")] = 3,
    frame_size: Annotated[str, typer.Option(help="Synthetic camera frame size WxH")] = "1280x720",
    threads: Annotated[int | None, typer.Option(help="ONNX Runtime intra-op threads (default: ORT's)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the figures as JSON here")] = None,
    png: Annotated[Path | None, typer.Option(help="Also write a throughput chart (PNG) here")] = None,
) -> None:
    """Latency (mean/p50/p95) and images/s per backend for batch sizes 1..8, next to the ort-basic baseline."""
    import onnxruntime as ort
    from rich.console import Console
    from rich.table import Table

    console = Console()
    sizes = _parse_batches(batches)
    try:
        width, height = (int(v) for v in frame_size.lower().split("x"))
    except ValueError:
        raise EdgeAppError(f"--frame-size: expected WxH such as 1280x720 (got {frame_size!r})") from None
    if model is None:
        if DEFAULT_MODEL.is_file():
            model = DEFAULT_MODEL
        else:
            from edge_app.bench.assets import untrained_model

            model = untrained_model()
            console.print(f"[yellow]no {DEFAULT_MODEL}: using an untrained SSD export {model}[/yellow]")
    backends = _backends(Path(model), threads, max(sizes))
    frames = synthetic_frames(max(sizes), width, height)
    rows = []
    for size in sizes:
        for name, detector in backends.items():
            times = _measure(detector, frames[:size], iterations, warmup)
            rows.append({"backend": name, "batch": size, "mean_ms": 1e3 * times.mean(),
                         "p50_ms": 1e3 * float(np.percentile(times, 50)),
                         "p95_ms": 1e3 * float(np.percentile(times, 95)),
                         "images_per_s": size / times.mean()})
    baseline = {r["batch"]: r["images_per_s"] for r in rows if r["backend"] == "ort-basic"}
    for r in rows:
        r["vs_ort_basic"] = r["images_per_s"] / baseline[r["batch"]]

    table = Table(title=f"detector: {model} ({width}x{height} frames, {iterations} calls each)")
    for column in ("backend", "batch", "mean ms", "p50 ms", "p95 ms", "images/s", "vs ort-basic"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for r in sorted(rows, key=lambda r: (list(backends).index(r["backend"]), r["batch"])):
        table.add_row(r["backend"], str(r["batch"]), f"{r['mean_ms']:.1f}", f"{r['p50_ms']:.1f}",
                      f"{r['p95_ms']:.1f}", f"{r['images_per_s']:.1f}", f"{r['vs_ort_basic']:.2f}x")
    console.print(table)
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count(), "onnxruntime": ort.__version__,
               "providers": getattr(backends["ort-basic"], "providers", [])}
    console.print(f"machine: {machine}")
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps({"model": str(model), "frame_size": [width, height], "machine": machine,
                                        "iterations": iterations, "results": rows}, indent=2), encoding="utf-8")
        console.print(f"wrote {json_out}")
    if png:
        _plot(rows, list(backends), png, f"{Path(model).name}, {width}x{height} frames")
        console.print(f"wrote {png}")


def _parse_batches(text: str) -> list[int]:
    try:
        if "-" in text:
            low, high = (int(v) for v in text.split("-"))
            sizes = list(range(low, high + 1))
        else:
            sizes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise EdgeAppError(f"--batches: expected a range like 1-8 or a list like 1,2,4,8 (got {text!r})") from None
    if not sizes or min(sizes) < 1 or max(sizes) > 64:
        raise EdgeAppError(f"--batches: expected batch sizes between 1 and 64 (got {text!r})")
    return sizes


def _plot(rows: list[dict], backends: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name in backends:
        mine = sorted((r for r in rows if r["backend"] == name), key=lambda r: r["batch"])
        ax.plot([r["batch"] for r in mine], [r["images_per_s"] for r in mine], marker="o", label=name)
    ax.set_xlabel("batch size")
    ax.set_ylabel("images / s (detect, incl. preprocessing)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

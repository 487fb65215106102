"""`edge-app bench capacity`: the highest frame rate this device sustains, and devices per plant.

Method (the "find the max throughput of one unit, then divide the demand by it" approach used to size
inference units): ``--cameras`` paced sources (video files played as live cameras, see `paced`) offer
an increasing load through the real pipeline (decode, dynamic batching, ONNX Runtime, counting). Each
step runs ``--seconds``; it is *sustainable* when

* the frames processed are at least ``1 - max_drop`` of the frames offered (overload shows up as frames
  dropped by the drop-oldest queues or missed by a camera thread that cannot keep up), and
* the p95 end-to-end latency (decode -> counted) stays under ``--max-latency-ms``.

The per-camera rate grows geometrically until a step fails, then the boundary is bisected. The result
M (total fps over all cameras) gives the plant table: devices = ceil(C x F / (M x headroom)), where the
headroom (default 80 %) keeps spare capacity for bursts, reconnect storms and thermal throttling.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Annotated

import typer

from edge_app.bench.assets import bench_video, untrained_model
from edge_app.pipeline.cpu import available_cores, default_inference_threads


def run_step(detector: object, video: Path, cameras: int, fps_per_camera: float, seconds: float, batch: int,
             max_wait_ms: float) -> dict:
    """One load level through the pipeline; returns what was offered, processed, dropped, and latencies."""
    from edge_app.bench.paced import PacedVideoSource
    from edge_app.pipeline import Pipeline

    sources = {f"cam{i}": PacedVideoSource(f"cam{i}", video, fps_per_camera, seconds) for i in range(cameras)}
    done = {name: 0 for name in sources}

    def handler_for(name: str):  # noqa: ANN202 - a closure per stream
        def handle(frame: object, detections: object) -> None:
            done[name] += 1
        return handle

    pipeline = Pipeline(sources, [detector], {n: handler_for(n) for n in sources}, max_batch=batch,
                        max_wait_s=max_wait_ms / 1000, queue_size=batch, stoppers=[s.stop for s in sources.values()])
    started = time.monotonic()
    pipeline.start()
    if not pipeline.join(timeout=seconds * 3 + 10):  # hopelessly behind: stop and count what was done
        pipeline.stop()
        pipeline.join(timeout=30)
    elapsed = time.monotonic() - started
    offered = sum(s.offered for s in sources.values())
    processed = sum(done.values())
    latency = [m.latency for m in pipeline.metrics.streams.values()]
    p50 = max((w.percentiles_ms(50)[0] or 0.0) for w in latency)
    p95 = max((w.percentiles_ms(95)[0] or 0.0) for w in latency)
    return {"fps_per_camera": fps_per_camera, "offered_fps": offered / seconds,
            "achieved_fps": processed / max(seconds, elapsed - 1.0 / fps_per_camera), "seconds": elapsed,
            "offered": offered, "processed": processed, "loss": 1 - processed / offered if offered else 0.0,
            "latency_ms_p50": p50, "latency_ms_p95": p95, "mean_batch": pipeline.metrics.mean_batch_size()}


def plant_table(max_fps: float, cameras: list[int], rates: list[float], headroom: float) -> list[dict]:
    """Devices needed for C cameras at F fps each, given a device sustains ``max_fps`` (x headroom)."""
    usable = max_fps * headroom
    return [{"cameras": c, "fps": f, "devices": max(1, math.ceil(c * f / usable)) if usable > 0 else None}
            for c in cameras for f in rates]


def bench_capacity(
    cameras: Annotated[int, typer.Option(help="Paced camera streams used for the measurement")] = 4,
    start_fps: Annotated[float, typer.Option(help="First per-camera frame rate")] = 2.0,
    growth: Annotated[float, typer.Option(help="Per-camera rate multiplier between steps")] = 1.5,
    seconds: Annotated[float, typer.Option(help="Duration of each load step")] = 8.0,
    bisect: Annotated[int, typer.Option(help="Bisection steps after the first failing level")] = 2,
    batch: Annotated[int, typer.Option(help="Max batch size")] = 4,
    max_wait_ms: Annotated[float, typer.Option(help="Batcher max wait")] = 10.0,
    max_latency_ms: Annotated[float, typer.Option(help="Sustainable: p95 latency below this")] = 500.0,
    max_drop: Annotated[float, typer.Option(help="Sustainable: fraction of frames lost below this")] = 0.01,
    headroom: Annotated[float, typer.Option(help="Fraction of the measured capacity to plan with")] = 0.8,
    plant_cameras: Annotated[str, typer.Option(help="Camera counts for the plant table")] = "4,8,16,32,64",
    plant_fps: Annotated[str, typer.Option(help="Per-camera frame rates for the plant table")] = "5,10,15,30",
    width: Annotated[int, typer.Option(help="Video width")] = 640,
    height: Annotated[int, typer.Option(help="Video height")] = 480,
    model: Annotated[Path | None, typer.Option(help="ONNX model (default: untrained SSD export)")] = None,
    out: Annotated[Path, typer.Option(help="Folder for capacity.json and capacity.png")] = Path("out/bench"),
    short: Annotated[bool, typer.Option("--short", help="CI size: 2 cameras, 2 s steps, no bisection")] = False,
) -> None:
    """Step the offered load to find the highest sustainable fps, then devices needed per plant."""
    from rich.console import Console
    from rich.table import Table

    from edge_app.config import ModelConfig
    from edge_app.detectors.onnx_detector import OrtDetector
    from edge_app.pipeline.split import prepared

    console = Console(width=130)  # wide enough for the tables in logs and pipes too
    if short:
        cameras, seconds, bisect, growth = 2, 2.0, 0, max(growth, 2.0)
    video, made_by = bench_video(width, height)
    threads = default_inference_threads()
    detector = prepared(OrtDetector.from_config(ModelConfig(path=model or untrained_model(), batch_size=batch),
                                                optimization="all", intra_op_threads=threads))
    detector.detect([detector_warmup_frame(video)])
    console.print(f"capacity: {cameras} paced cameras of {video.name} ({made_by}, {width}x{height}), model "
                  f"{detector.model_version}, batch {batch}, {threads} inference thread(s) on {available_cores()} "
                  f"core(s); sustainable = loss <= {max_drop:.0%} and p95 latency <= {max_latency_ms:.0f} ms")

    def ok(step: dict) -> bool:
        return step["loss"] <= max_drop and step["latency_ms_p95"] <= max_latency_ms

    steps: list[dict] = []
    rate, good, bad = start_fps, None, None
    while bad is None and rate <= 500:
        step = run_step(detector, video, cameras, rate, seconds, batch, max_wait_ms)
        step["sustainable"] = ok(step)
        steps.append(step)
        console.print(f"  {step['offered_fps']:.1f} fps offered -> {step['achieved_fps']:.1f} processed, loss "
                      f"{step['loss']:.1%}, p95 {step['latency_ms_p95']:.0f} ms: "
                      f"{'ok' if step['sustainable'] else 'NOT sustainable'}")
        good, bad = (step, None) if step["sustainable"] else (good, step)
        rate *= growth
    for _ in range(bisect if good and bad else 0):
        rate = (good["fps_per_camera"] + bad["fps_per_camera"]) / 2
        step = run_step(detector, video, cameras, rate, seconds, batch, max_wait_ms)
        step["sustainable"] = ok(step)
        steps.append(step)
        console.print(f"  bisect {step['offered_fps']:.1f} fps offered -> loss {step['loss']:.1%}, p95 "
                      f"{step['latency_ms_p95']:.0f} ms: {'ok' if step['sustainable'] else 'NOT sustainable'}")
        good, bad = (step, bad) if step["sustainable"] else (good, step)

    table = Table(title="load steps")
    for col in ("offered fps", "processed fps", "loss", "p50 ms", "p95 ms", "mean batch", "sustainable"):
        table.add_column(col, justify="right")
    for s in sorted(steps, key=lambda s: s["offered_fps"]):
        table.add_row(f"{s['offered_fps']:.1f}", f"{s['achieved_fps']:.1f}", f"{s['loss']:.1%}",
                      f"{s['latency_ms_p50']:.0f}", f"{s['latency_ms_p95']:.0f}", str(s["mean_batch"]),
                      "yes" if s["sustainable"] else "no")
    console.print(table)
    max_fps = good["offered_fps"] if good else 0.0
    console.print(f"highest sustainable load on this device: {max_fps:.1f} fps in total "
                  f"(planning with {headroom:.0%} of it: {max_fps * headroom:.1f} fps)")

    cams = [int(c) for c in plant_cameras.split(",")]
    rates = [float(f) for f in plant_fps.split(",")]
    plan = plant_table(max_fps, cams, rates, headroom)
    ptable = Table(title="devices needed per plant (rows: cameras, columns: fps per camera)")
    ptable.add_column("cameras", justify="right")
    for f in rates:
        ptable.add_column(f"{f:g} fps", justify="right")
    for c in cams:
        ptable.add_row(str(c), *[str(next(p["devices"] for p in plan if p["cameras"] == c and p["fps"] == f))
                                 for f in rates])
    console.print(ptable)

    out.mkdir(parents=True, exist_ok=True)
    result = {"cameras": cameras, "batch": batch, "threads": threads, "cores": available_cores(),
              "max_latency_ms": max_latency_ms, "max_drop": max_drop, "headroom": headroom,
              "model_version": detector.model_version, "video": {"made_by": made_by, "width": width,
                                                                 "height": height},
              "max_sustainable_fps": max_fps, "steps": steps, "plant": plan}
    (out / "capacity.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    _chart(steps, max_fps, out / "capacity.png")
    console.print(f"wrote {out / 'capacity.json'} and {out / 'capacity.png'}")


def detector_warmup_frame(video: Path):  # noqa: ANN201 - numpy array
    import cv2

    cap = cv2.VideoCapture(str(video))
    ok, image = cap.read()
    cap.release()
    if not ok:
        raise RuntimeError(f"{video}: cannot decode")
    return image


def _chart(steps: list[dict], max_fps: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted(steps, key=lambda s: s["offered_fps"])
    fig, ax1 = plt.subplots(figsize=(7, 4))
    offered = [s["offered_fps"] for s in steps]
    ax1.plot(offered, offered, "k:", label="offered")
    ax1.plot(offered, [s["achieved_fps"] for s in steps], "o-", label="processed")
    ax1.axvline(max_fps, color="green", linestyle="--", label=f"max sustainable {max_fps:.0f} fps")
    ax1.set_xlabel("offered load (fps, all cameras)")
    ax1.set_ylabel("fps")
    ax2 = ax1.twinx()
    ax2.plot(offered, [s["latency_ms_p95"] for s in steps], "r^-", label="p95 latency")
    ax2.set_ylabel("p95 latency (ms)", color="red")
    ax1.legend(loc="upper left", fontsize=8)
    ax1.set_title("Capacity: offered vs processed load")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

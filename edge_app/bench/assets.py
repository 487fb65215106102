"""What the pipeline and capacity benchmarks run on: a sim video and an exported detector.

Video: ``edge-app sim generate`` (the packaging-line simulator) when it is available, else a synthetic
clip written here with OpenCV (textured background, moving rectangles), said so in the output.
Model: the ONNX file given with ``--model``, else an untrained GluonCV net of the same architecture as
the shipped one, exported once into ``.cache/edge-app/`` (speed does not depend on the weights; the MXNet
baseline loads the very same exported weights, so all three contestants run the same network).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "edge-app"
DEFAULT_ARCH = "ssd_300_mobilenet0.25_custom"


def untrained_model(arch: str = DEFAULT_ARCH, input_wh: tuple[int, int] = (300, 300), seed: int = 0) -> Path:
    """Cached ONNX export of an untrained ``arch`` with its MXNet symbol/params kept next to it."""
    from edge_app.detectors.export import export_gluoncv_detector

    path = CACHE / f"{arch}-{input_wh[0]}x{input_wh[1]}-seed{seed}.onnx"
    if not (path.is_file() and path.with_name(f"{path.stem}-0000.params").is_file()):
        log.info("exporting an untrained %s to %s", arch, path)
        export_gluoncv_detector(arch, path, classes=("tray",), input_size=input_wh, seed=seed, keep_mxnet_files=True)
    return path


def sim_available() -> bool:
    cmd = [sys.executable, "-m", "edge_app.cli", "sim", "generate", "--help"]
    return subprocess.run(cmd, capture_output=True).returncode == 0


def bench_video(width: int = 640, height: int = 480, bins: int = 2, seed: int = 1) -> tuple[Path, str]:
    """``(video path, how it was made)``, cached by its parameters."""
    out = CACHE / f"video-{width}x{height}-{bins}bins-seed{seed}"
    video = out / "video.mp4"
    if video.is_file():
        return video, "sim" if (out / "truth.json").is_file() else "synthetic"
    out.mkdir(parents=True, exist_ok=True)
    if sim_available():
        cmd = [sys.executable, "-m", "edge_app.cli", "sim", "generate", "--line", "line-1", "--seed", str(seed),
               "--out", str(out), "--width", str(width), "--height", str(height), "--bins", str(bins)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode == 0 and video.is_file():
            return video, "sim"
        log.warning("sim generate failed (%s); writing a synthetic clip instead", done.stderr.strip()[-300:])
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
    write_synthetic_video(video, width, height, frames=300)
    return video, "synthetic"


def write_synthetic_video(path: Path, width: int, height: int, frames: int, fps: float = 25.0) -> Path:
    """Textured background and a few moving boxes: enough for decoding to cost what a real clip costs."""
    import cv2

    rng = np.random.default_rng(0)
    background = rng.integers(40, 120, (height, width, 3), dtype=np.uint8)
    background = cv2.GaussianBlur(background, (5, 5), 2)
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for i in range(frames):
        image = background.copy()
        for k in range(1 + (i // 30) % 6):
            x = (37 * k + 3 * i) % max(width - 80, 1)
            y = (53 * k + 2 * i) % max(height - 60, 1)
            cv2.rectangle(image, (x, y), (x + 70, y + 50), (200, 180 - 20 * k, 90 + 25 * k), -1)
        writer.write(image)
    writer.release()
    tmp.replace(path)
    return path

"""Training data: samples from LST files or Ground Truth manifests, augmented batches with targets.

A SageMaker channel (``SM_CHANNEL_TRAIN``) is a folder; it may hold ``*.lst`` files (images resolved
relative to the LST) or Ground Truth ``*.manifest`` files (images relative to the manifest). Both become
`Sample` objects: an image path and ``(N, 5)`` boxes ``[xmin, ymin, xmax, ymax, cls]`` in pixels.

Batches are produced by a background thread (OpenCV releases the GIL, so decoding/augmenting overlaps
the MXNet step on the other core). Network inputs follow GluonCV's convention, which the exported ONNX keeps:
RGB, stretched to the input size, ``(x / 255 - mean) / std`` with ImageNet mean/std, NCHW float32.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_app.errors import EdgeAppError
from training.augment import apply_roi, augment

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass
class Sample:
    path: str
    boxes: np.ndarray  # (N, 5) pixels [xmin, ymin, xmax, ymax, cls]
    width: int | None = None
    height: int | None = None
    group: str | None = None


def samples_from_path(path: Path, class_names_out: list[str] | None = None) -> list[Sample]:
    """Samples from a folder (all ``*.lst`` else all ``*.manifest``), an LST file or a manifest file."""
    path = Path(path)
    if path.is_dir():
        lsts = sorted(path.glob("*.lst"))
        files = lsts or sorted(path.glob("*.manifest"))
        if not files:
            raise EdgeAppError(f"{path}: channel folder holds no *.lst or *.manifest file")
    elif path.is_file():
        files = [path]
    else:
        raise EdgeAppError(f"{path}: not found")
    out: list[Sample] = []
    for file in files:
        if file.suffix == ".lst":
            from training.lst import read_lst

            for rec in read_lst(file):
                img_path = str((file.parent / rec.path).resolve())
                if rec.width is None:
                    h, w = _image_hw(img_path)
                else:
                    w, h = rec.width, rec.height
                boxes = rec.boxes.copy()
                boxes[:, [0, 2]] *= w
                boxes[:, [1, 3]] *= h
                out.append(Sample(img_path, boxes, w, h))
        else:
            from training.manifest import read_manifests

            report = read_manifests([file])
            if class_names_out is not None and not class_names_out:
                class_names_out.extend(report.ordered_class_names())
            for e in report.entries:
                boxes = np.array([[b.xmin, b.ymin, b.xmax, b.ymax, b.class_id] for b in e.boxes], np.float32)
                out.append(Sample(e.source_ref, boxes.reshape(-1, 5), e.width, e.height,
                                  e.metadata.get("line") if isinstance(e.metadata, dict) else None))
    return out


def _image_hw(path: str) -> tuple[int, int]:
    img = cv2.imread(path)
    if img is None:
        raise EdgeAppError(f"{path}: cannot read image")
    return img.shape[0], img.shape[1]


def load_rgb(path: str) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise EdgeAppError(f"{path}: cannot read image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def to_input(img_rgb: np.ndarray, size: int, interpolation: int | None = None) -> np.ndarray:
    """HWC uint8 RGB -> CHW float32 normalised network input (stretch resize).

    Default interpolation is MXNet's ``interp=9`` rule that GluonCV (and the edge app's detector) use at
    test time: area when shrinking both sides, cubic when enlarging both, linear otherwise.
    """
    if interpolation is None:
        h, w = img_rgb.shape[:2]
        interpolation = (cv2.INTER_AREA if (h > size and w > size) else
                         cv2.INTER_CUBIC if (h < size and w < size) else cv2.INTER_LINEAR)
    resized = cv2.resize(img_rgb, (size, size), interpolation=interpolation).astype(np.float32) / 255.0
    resized = (resized - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return np.ascontiguousarray(resized.transpose(2, 0, 1))


def scale_boxes(boxes: np.ndarray, from_wh: tuple[int, int], size: int) -> np.ndarray:
    out = boxes.astype(np.float32).copy()
    out[:, [0, 2]] *= size / from_wh[0]
    out[:, [1, 3]] *= size / from_wh[1]
    return out


def augmented_example(sample: Sample, size: int, rng: np.random.Generator, strength: float,
                      roi: list[tuple[float, float]] | None = None,
                      motion_blur_p: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """One training example: (CHW input, (N, 5) boxes at input scale), tiny boxes removed."""
    img, boxes = apply_roi(load_rgb(sample.path), sample.boxes.copy(), roi)
    img, boxes = augment(img, boxes, rng, strength=strength, motion_blur_p=motion_blur_p)
    h, w = img.shape[:2]
    boxes = scale_boxes(boxes, (w, h), size)
    keep = ((boxes[:, 2] - boxes[:, 0]) >= 2) & ((boxes[:, 3] - boxes[:, 1]) >= 2)
    interpolation = int(rng.choice([cv2.INTER_LINEAR, cv2.INTER_AREA, cv2.INTER_CUBIC, cv2.INTER_NEAREST]))
    return to_input(img, size, interpolation), boxes[keep]


def pad_boxes(batch_boxes: list[np.ndarray]) -> np.ndarray:
    """Stack variable-length box arrays into ``(B, M, 5)`` padded with -1 (GluonCV's padding value)."""
    m = max(1, max(len(b) for b in batch_boxes))
    out = -np.ones((len(batch_boxes), m, 5), np.float32)
    for i, b in enumerate(batch_boxes):
        out[i, : len(b)] = b[:, :5]
    return out


def batches(samples: list[Sample], batch_size: int, size: int, seed: int, strength: float,
            roi: list[tuple[float, float]] | None = None, prefetch: int = 3,
            motion_blur_p: float = 0.0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless shuffled augmented batches ``(B, 3, S, S)``, ``(B, M, 5)`` from a background thread."""
    if not samples:
        raise EdgeAppError("no training images")
    q: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def produce() -> None:
        rng = np.random.default_rng(seed)
        while not stop.is_set():
            order = rng.permutation(len(samples))
            for start in range(0, len(order) - batch_size + 1 if len(order) >= batch_size else 1, batch_size):
                idx = order[start:start + batch_size]
                if len(idx) < batch_size:
                    idx = np.resize(order, batch_size)
                examples = [augmented_example(samples[i], size, rng, strength, roi, motion_blur_p) for i in idx]
                item = (np.stack([e[0] for e in examples]), pad_boxes([e[1] for e in examples]))
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return

    thread = threading.Thread(target=produce, daemon=True, name="train-batches")
    thread.start()
    try:
        while True:
            yield q.get()
    finally:
        stop.set()

"""Offline augmented copies: the article's "original and augmented images combined into one dataset".

Each source image gets ``copies`` augmented versions (`training.augment.augment`) written as JPEG next to a
Ground Truth style ``output.manifest`` (label attribute ``bounding-box``), so every other tool reads them
like any labelled data; the original manifest plus this one form the unified dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from edge_app.errors import EdgeAppError
from training.augment import augment
from training.lst import atomic_write_text
from training.manifest import ManifestReport


def write_augmented_copies(report: ManifestReport, out: Path, *, copies: int = 1, seed: int = 0) -> int:
    if copies < 1:
        raise EdgeAppError(f"--copies: expected >= 1, got {copies}")
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    class_map = {str(k): v for k, v in report.class_names.items()}
    lines = []
    for i, entry in enumerate(report.entries):
        img = cv2.imread(entry.source_ref, cv2.IMREAD_COLOR)
        if img is None:
            raise EdgeAppError(f"{entry.where}: cannot read image {entry.source_ref} (download s3 images first)")
        boxes = np.array([[b.xmin, b.ymin, b.xmax, b.ymax, b.class_id] for b in entry.boxes], np.float32)
        for c in range(copies):
            aug, aug_boxes = augment(img, boxes.reshape(-1, 5), rng)
            name = f"images/{i:06d}_{c}{Path(entry.source_ref).suffix or '.jpg'}"
            if not cv2.imwrite(str(out / name), aug):
                raise EdgeAppError(f"{out / name}: cannot write image")
            h, w = aug.shape[:2]
            anns = [{"class_id": int(b[4]), "left": round(float(b[0]), 1), "top": round(float(b[1]), 1),
                     "width": round(float(b[2] - b[0]), 1), "height": round(float(b[3] - b[1]), 1)} for b in aug_boxes]
            lines.append(json.dumps({
                "source-ref": name,
                "bounding-box": {"image_size": [{"width": w, "height": h, "depth": 3}], "annotations": anns},
                "bounding-box-metadata": {"class-map": class_map, "type": "groundtruth/object-detection",
                                          "human-annotated": "no", "augmented-from": entry.source_ref,
                                          **({"line": entry.metadata["line"]} if "line" in entry.metadata else {})},
            }))
    atomic_write_text(out / "output.manifest", "".join(line + "\n" for line in lines))
    return len(lines)

"""Eyeball the labels: draw ``boxes.jsonl`` truth on sampled frames, optionally as a montage of several outputs.

Green boxes are labelled in ``output.manifest`` (visible fraction >= the threshold), red ones are visible but
too hidden to be labelled; each box shows ``tray_id:visible``. Used to make ``docs/img/sim_frame.jpg``::

    python -m sim.preview OUT1:FRAME OUT2:FRAME ... --out docs/img/sim_frame.jpg [--tile-width 640]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np


def draw_truth(image: np.ndarray, trays: list[dict], min_visible: float = 0.5) -> np.ndarray:
    out = image.copy()
    for tr in trays:
        x1, y1, x2, y2 = tr["box"]
        color = (60, 220, 60) if tr["visible"] >= min_visible else (50, 50, 230)
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), color, 2)
        cv2.putText(out, f"{tr['tray_id']}:{tr['visible']:.2f}", (x1 + 3, y1 + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    color, 1, cv2.LINE_AA)
    return out


def frame_with_truth(out_dir: Path, frame: int) -> np.ndarray:
    """Sampled frame ``frame`` of a generator output folder, with its truth boxes and line name drawn."""
    truth = json.loads((out_dir / "truth.json").read_text())
    name = f"{truth['line']}-s{truth['seed']}-{frame:06d}.jpg"
    image = cv2.imread(str(out_dir / "frames" / name))
    if image is None:
        raise SystemExit(f"{out_dir}: frame {frame} was not sampled (no frames/{name})")
    with open(out_dir / "boxes.jsonl", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i == frame:
                trays = json.loads(line)["trays"]
                break
    image = draw_truth(image, trays, truth.get("label_min_visible", 0.5))
    cv2.putText(image, truth["line"], (12, 36), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (255, 255, 255), 3, cv2.LINE_AA)
    return image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("items", nargs="+", help="OUT_DIR:FRAME")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tile-width", type=int, default=640)
    ap.add_argument("--columns", type=int, default=2)
    args = ap.parse_args()
    tiles = []
    for item in args.items:
        d, f = item.rsplit(":", 1)
        img = frame_with_truth(Path(d), int(f))
        h = round(img.shape[0] * args.tile_width / img.shape[1])
        tiles.append(cv2.resize(img, (args.tile_width, h), interpolation=cv2.INTER_AREA))
    while len(tiles) % args.columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i:i + args.columns]) for i in range(0, len(tiles), args.columns)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 88])


if __name__ == "__main__":
    main()

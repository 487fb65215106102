"""Annotated video per stream: what the app saw and counted, for commissioning and audits.

Why draw it at all: when a plant engineer tunes a ROI or doubts a count, the fastest check is to watch
the boxes, the polygon and the counters over the real footage. Drawn on the post-processing thread, so
it never slows the detector; written with OpenCV's ``mp4v`` encoder, available in every opencv-python
wheel (H.264 would need a system FFmpeg build with x264).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge_app.detections import Detections

_GREEN = (60, 200, 60)
_GREY = (150, 150, 150)
_ROI = (0, 200, 255)
_WHITE = (255, 255, 255)


def draw_overlay(
    image: np.ndarray,
    counted: Detections,
    ignored: Detections | None = None,
    *,
    roi: np.ndarray | None = None,
    local: int = 0,
    global_count: int = 0,
    fps: float | None = None,
    title: str = "",
) -> np.ndarray:
    """A copy of ``image`` with counted boxes (green), ignored ones outside the ROI (grey), the ROI
    polygon, and a header with the local and global counts and fps."""
    out = image.copy()
    if roi is not None:
        cv2.polylines(out, [np.round(roi).astype(np.int32)], True, _ROI, 2)
    for dets, colour in ((ignored, _GREY), (counted, _GREEN)):
        if dets is None:
            continue
        for (x1, y1, x2, y2), score in zip(dets.boxes, dets.scores, strict=True):
            cv2.rectangle(out, (int(x1), int(y1)), (int(x2), int(y2)), colour, 2)
            cv2.putText(out, f"{score:.2f}", (int(x1), max(int(y1) - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        colour, 1, cv2.LINE_AA)
    header = f"{title}  local {local}  global {global_count}"
    if fps is not None:
        header += f"  {fps:.1f} fps"
    cv2.rectangle(out, (0, 0), (out.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(out, header, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, _WHITE, 1, cv2.LINE_AA)
    return out


class AnnotatedVideoWriter:
    """Writes ``<folder>/<stream>.mp4``; opened lazily at the first frame (its size fixes the video's)."""

    def __init__(self, folder: Path, stream: str, fps: float = 25.0) -> None:
        self.path = Path(folder) / f"{stream}.mp4"
        self.fps = fps
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        height, width = image.shape[:2]
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._size = (width, height)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size)
            if not self._writer.isOpened():
                raise OSError(f"{self.path}: cannot open a video writer")
        if (width, height) != self._size:  # a camera changed resolution after a reconnect
            image = cv2.resize(image, self._size)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

"""Frames for the dashboard: keep a reference to the latest one, draw and encode only when asked.

Why lazily: on a 2-core box every millisecond spent on a frame nobody looks at is taken from
inference. Keeping the latest frame costs one reference per stream (decoders allocate a new array
per frame, so it is never overwritten); the overlay (`edge_app.annotate.draw_overlay`, the same one
the annotated video uses) and the JPEG encoding happen when a browser asks, at most once per frame
however many viewers there are (`FrameSlot` caches the last encoding).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge_app.detections import Detections
from edge_app.roi import Roi

JPEG_QUALITY = 80


@dataclass(frozen=True, slots=True)
class FrameView:
    """One processed frame and what the counter thought of it, enough to draw it later."""

    stream: str
    index: int
    image: np.ndarray
    detections: Detections
    """Raw detections of the frame (before the score, class and ROI filters)."""
    wanted: Callable[[Detections], Detections]
    """The stream's score/class filter (the same one the counter's input went through)."""
    roi: Roi
    local: int
    global_count: int
    bin_id: int
    visible: int
    fps: float | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def annotate(view: FrameView) -> np.ndarray:
    """The frame with counted boxes (green), ignored ones (grey), the ROI and the counts in a header."""
    from edge_app.annotate import draw_overlay

    wanted = view.wanted(view.detections)
    counted = view.roi.filter(wanted)
    ignored = wanted.filter(~view.roi.contains(wanted.centers)) if len(wanted) else None
    return draw_overlay(view.image, counted, ignored, roi=view.roi.polygon, local=view.local,
                        global_count=view.global_count, fps=view.fps, title=view.stream)


class FrameSlot:
    """The latest `FrameView` of one stream plus a cache of its last annotated and raw JPEGs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._view: FrameView | None = None
        self._cache: dict[bool, tuple[int, bytes]] = {}

    def put(self, view: FrameView) -> None:
        with self._lock:
            self._view = view

    @property
    def view(self) -> FrameView | None:
        with self._lock:
            return self._view

    def jpeg(self, annotated: bool = True) -> tuple[int, bytes] | None:
        """``(frame index, JPEG bytes)`` of the latest frame, or None before the first frame."""
        view = self.view
        if view is None:
            return None
        with self._lock:
            cached = self._cache.get(annotated)
        if cached is not None and cached[0] == view.index:
            return cached
        data = encode_jpeg(annotate(view) if annotated else view.image)
        with self._lock:
            self._cache[annotated] = (view.index, data)
        return view.index, data

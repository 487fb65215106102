"""A video file played as a live camera at a chosen frame rate, for load tests.

A real camera delivers frames on its own clock whether or not the app keeps up. This source decodes the
file (looping) and yields frame *i* at ``start + i / fps``; when the process is too busy to yield a frame
on time, the frames it missed are skipped and counted as ``missed`` (a camera's frames would be lost in
the network buffer the same way), so the offered load is exactly ``fps`` per camera.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

from edge_app.frame import Frame


class PacedVideoSource:
    live = True

    def __init__(self, name: str, video: Path, fps: float, duration_s: float) -> None:
        if fps <= 0 or duration_s <= 0:
            raise ValueError("fps and duration_s must be > 0")
        self.name = name
        self.video = Path(video)
        self.fps = fps
        self.duration_s = duration_s
        self.offered = int(round(fps * duration_s))
        self.missed = 0
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        cap = cv2.VideoCapture(str(self.video))
        start = time.monotonic()
        try:
            index = 0
            while index < self.offered and not self._stop.is_set():
                due = start + index / self.fps
                delay = due - time.monotonic()
                if delay > 0:
                    if self._stop.wait(delay):
                        return
                elif -delay > 1.0 / self.fps:  # more than a frame late: this frame is gone
                    self.missed += 1
                    index += 1
                    continue
                ok, image = cap.read()
                if not ok:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, image = cap.read()
                    if not ok:
                        return
                yield Frame(self.name, index, time.time(), image, live=True)
                index += 1
        finally:
            cap.release()

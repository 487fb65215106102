"""Plays a video file as a live camera: real-time pacing, looping, freeze/corrupt/stall/jitter faults.

Frames are JPEG-encoded once here and handed to the transport (MJPEG over HTTP or the RTSP process), so
both protocols share the same pacing and fault logic. Pacing uses absolute deadlines
(``next += interval``) so the rate does not drift with encode time; if the player falls more than a second
behind (a loaded machine) it resynchronises instead of bursting to catch up, as a real camera would.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_app.errors import EdgeAppError
from sim.camera.corrupt import CorruptKind, corrupt_jpeg
from sim.camera.faults import FaultState

log = logging.getLogger(__name__)

Publish = Callable[[bytes], None]


class FramePlayer:
    """Background thread producing paced JPEG frames from ``video`` into ``publish``."""

    def __init__(self, video: Path, publish: Publish, faults: FaultState, *, fps: float | None = None,
                 loop: bool = True, jpeg_quality: int = 85, corrupt_kind: CorruptKind = "header",
                 seed: int = 0) -> None:
        import cv2

        self.video = Path(video)
        if not self.video.is_file():
            raise EdgeAppError(f"{self.video}: video file not found")
        # Opened here, once, and looped by seeking: OpenCV's FFMPEG backend serialises every open in the
        # process behind one mutex, so reopening while a client in this process is connecting would freeze
        # the camera for as long as that client's open blocks.
        self._cap: Any = cv2.VideoCapture(str(self.video))
        if not self._cap.isOpened():
            raise EdgeAppError(f"{self.video}: cannot open as a video")
        native_fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps or (native_fps if native_fps and native_fps > 0 else 15.0))
        if self.fps <= 0:
            raise EdgeAppError(f"--fps: must be > 0, got {self.fps}")
        self._publish = publish
        self._faults = faults
        self._loop = loop
        self._quality = jpeg_quality
        self._corrupt_kind = corrupt_kind
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="camera-player", daemon=True)
        self.frames_sent = 0
        self.finished = threading.Event()
        """Set when a non-looping video has been played to its end."""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop playing and release the video (also when never started)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        elif not self._thread.ident:  # never started: the capture opened in __init__ is still ours
            self._cap.release()

    def _rewind(self, cap: Any) -> Any:
        """Seek to the first frame (no new open, see __init__); reopen only if seeking is not supported."""
        import cv2

        if cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
            return cap
        cap.release()
        cap = cv2.VideoCapture(str(self.video))
        return cap if cap.isOpened() else None

    def _run(self) -> None:
        import cv2

        cap = self._cap
        frozen_jpeg: bytes | None = None
        next_deadline = time.monotonic()
        failed_reads = 0
        try:
            while not self._stop.is_set() and cap is not None:
                ok, image = cap.read()
                if not ok:
                    failed_reads += 1
                    if not self._loop or failed_reads > 1:  # an empty pass: nothing to loop over
                        break
                    cap = self._rewind(cap)
                    continue
                failed_reads = 0
                if self._faults.frozen:
                    if frozen_jpeg is None:
                        frozen_jpeg = self._encode(cv2, image)
                    jpeg = frozen_jpeg
                else:
                    frozen_jpeg = None
                    jpeg = self._encode(cv2, image)
                if self._faults.take_corrupt():
                    jpeg = corrupt_jpeg(jpeg, self._corrupt_kind, self._rng)
                if not self._faults.stalled:
                    self._publish(jpeg)
                    self.frames_sent += 1
                jitter = self._faults.jitter_fraction
                interval = (1.0 / self.fps) * (1.0 + self._rng.uniform(-jitter, jitter))
                next_deadline += interval
                delay = next_deadline - time.monotonic()
                if delay < -1.0:
                    next_deadline = time.monotonic()
                elif delay > 0:
                    self._stop.wait(delay)
        except Exception:  # keep the failure visible in logs; the transport sees frames stop
            log.exception("camera player failed")
        finally:
            if cap is not None:
                cap.release()
            self.finished.set()

    def _encode(self, cv2: Any, image: Any) -> bytes:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self._quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return buf.tobytes()

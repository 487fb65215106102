"""Video files: decoded in the caller's thread, media-time timestamps, optional looping.

A file is not real time, so nothing is dropped: frames come exactly as fast as the consumer asks (back
pressure), which keeps runs reproducible. ``Frame.index`` is the frame's position in the media timeline
(continuing across loops), ``Frame.timestamp = index / fps``; skipped corrupt frames leave gaps in the
indices so timestamps stay true to the video.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge_app.config import StreamConfig
from edge_app.errors import EdgeAppError
from edge_app.frame import Frame
from edge_app.sources.base import VideoSource
from edge_app.sources.capture import is_valid_image, open_capture
from edge_app.sources.options import SourceOptions

log = logging.getLogger(__name__)

FALLBACK_FPS = 25.0


class FileSource(VideoSource):
    """Frames of a video file; the first good frame is decoded at construction so that a missing, empty
    or undecodable file is an :class:`EdgeAppError` at start-up, not a silent empty stream."""

    live = False

    def __init__(self, stream: StreamConfig, path: str, options: SourceOptions,
                 max_frames: int | None = None) -> None:
        super().__init__(stream, options, max_frames)
        self.path = Path(path)
        where = f"stream {stream.name!r}: uri {stream.uri!r}"
        if not self.path.is_file():
            raise EdgeAppError(f"{where}: video file not found")
        if self.path.stat().st_size == 0:
            raise EdgeAppError(f"{where}: video file is empty")
        self._cap_lock = threading.Lock()  # close() from another thread must not release mid-read
        self._cap: Any = open_capture_file(self.path, options)
        if self._cap is None:
            raise EdgeAppError(f"{where}: cannot open as a video (unsupported format or codec?)")
        import cv2

        fps = float(self._cap.get(cv2.CAP_PROP_FPS))
        if not math.isfinite(fps) or fps <= 0:
            log.warning("%s: video reports no frame rate; assuming %.0f fps for timestamps", where, FALLBACK_FPS)
            fps = FALLBACK_FPS
        self.fps = fps
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count: int | None = int(count) if math.isfinite(count) and count > 0 else None
        self._stats.update(connects=1, connected=True)
        self._frames = self._decode()
        self._first = next(self._frames, None)
        if self._first is None and not self.stopped:
            self.close()
            raise EdgeAppError(f"{where}: video contains no decodable frames")

    def __iter__(self) -> Iterator[Frame]:
        yielded = 0
        try:
            while self.max_frames is None or yielded < self.max_frames:
                frame, self._first = self._first, None
                if frame is None:
                    frame = next(self._frames, None)
                if frame is None or self.stopped:
                    return
                yield frame
                yielded += 1
        finally:
            self.close()

    def _decode(self) -> Iterator[Frame]:
        """All good frames of the file (looping if asked), skipping and counting corrupt ones.

        A failed read before the known end is retried: if a good frame follows, the failures were corrupt
        frames; ``max_read_failures`` failures in a row end the pass (a truncated file ends early).
        """
        position = 0  # index in the media timeline, across loops
        while not self.stopped:
            pass_start, failures, frames_in_pass = position, 0, 0
            while not self.stopped:
                with self._cap_lock:
                    if self._cap is None:
                        return
                    ok, image = self._cap.read()
                if ok and is_valid_image(image):
                    if failures:
                        self._stats.add("corrupt_skipped", failures)
                        log.warning("stream %r: skipped %d corrupt frame(s) at frame %d",
                                    self.name, failures, position)
                        position += failures
                        failures = 0
                    self._stats.frame()
                    frames_in_pass += 1
                    yield Frame(self.name, position, position / self.fps, image, live=False)
                    position += 1
                elif ok:  # decoded but empty or the wrong shape
                    self._stats.add("corrupt_skipped")
                    position += 1
                else:
                    known_end = self.frame_count is not None and position - pass_start + failures >= self.frame_count
                    failures += 1
                    if known_end or failures >= self.options.max_read_failures:
                        break
            if failures and self.frame_count is not None and position - pass_start < self.frame_count:
                log.warning("stream %r: video ended after %d of %d frames (truncated or damaged tail)",
                            self.name, position - pass_start, self.frame_count)
            if not self.stream.loop or frames_in_pass == 0 or self.stopped:
                return
            with self._cap_lock:
                if self._cap is None:
                    return
                self._cap = self._rewind(self._cap)
            if self._cap is None:
                self._stats.update(connected=False, last_error="cannot reopen the file to loop")
                log.error("stream %r: cannot reopen %s to loop", self.name, self.path)
                return
            log.debug("stream %r: looping", self.name)

    def _rewind(self, cap: Any) -> Any:
        """Seek back to the first frame. Seeking, unlike reopening, does not take OpenCV's process-wide
        FFMPEG open mutex, so a looping file never waits behind a camera that is slow to connect."""
        import cv2

        if cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
            return cap
        cap.release()
        return open_capture_file(self.path, self.options)

    def close(self) -> None:
        self.stop()
        with self._cap_lock:
            cap, self._cap = self._cap, None
            if cap is not None:
                cap.release()
        self._stats.update(connected=False)


def open_capture_file(path: Path, options: SourceOptions) -> Any:
    from edge_app.sources.capture import ParsedUri, SourceKind

    return open_capture(ParsedUri(SourceKind.FILE, str(path)), options.open_timeout_s, options.read_timeout_s)

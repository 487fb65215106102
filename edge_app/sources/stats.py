"""Counters a source keeps about itself, for logs, health messages and tests."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class SourceStats:
    """A consistent snapshot (``source.stats`` returns a copy; mutating it changes nothing)."""

    frames_read: int = 0
    """Good frames decoded (yielded or, for live sources, dropped because the consumer was slow)."""
    frames_dropped: int = 0
    """Live frames discarded because the consumer fell more than ``buffer_frames`` behind."""
    corrupt_skipped: int = 0
    """Failed or invalid frames skipped without ending the stream (decode error, empty, wrong shape)."""
    connects: int = 0
    """Successful opens (the first one included)."""
    reconnects: int = 0
    """Successful opens after a disconnect or a failed first open (``connects - 1`` once connected)."""
    failed_connects: int = 0
    """Opens that failed or timed out."""
    disconnects: int = 0
    """Sessions that ended on read failures or a stall, after having connected."""
    stalls: int = 0
    """Sessions ended because an open or read blocked for the timeout (by the backend's own timeout or the
    watchdog); a subset of ``failed_connects + disconnects``."""
    connected: bool = False
    last_error: str | None = None
    retry_delay_s: float | None = None
    """Delay chosen before the pending retry (None when not waiting to retry)."""
    fps: float = 0.0
    """Good frames decoded per second over the last 2 s (for files: the decode rate, not the video's fps)."""
    last_frame_time: float | None = None
    """Wall-clock time of the last good frame."""


class StatsRecorder:
    """Thread-safe mutable side of :class:`SourceStats`, written by the decode thread."""

    _FPS_WINDOW_S = 2.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = SourceStats()
        self._frame_times: deque[float] = deque()

    def snapshot(self) -> SourceStats:
        with self._lock:
            return replace(self._stats, fps=self._fps())

    def update(self, **changes: object) -> None:
        with self._lock:
            self._stats = replace(self._stats, **changes)  # type: ignore[arg-type]

    def add(self, field: str, n: int = 1) -> None:
        with self._lock:
            self._stats = replace(self._stats, **{field: getattr(self._stats, field) + n})

    def frame(self) -> None:
        """Record one good frame."""
        now = time.monotonic()
        with self._lock:
            self._frame_times.append(now)
            while self._frame_times[0] < now - self._FPS_WINDOW_S:
                self._frame_times.popleft()
            self._stats = replace(self._stats, frames_read=self._stats.frames_read + 1,
                                  last_frame_time=time.time())

    def _fps(self) -> float:
        """Good frames over the last window divided by the window: robust to the burst of buffered frames
        a network stream delivers right after connecting (it counts, but is spread over the window)."""
        now = time.monotonic()
        return sum(1 for t in self._frame_times if t >= now - self._FPS_WINDOW_S) / self._FPS_WINDOW_S

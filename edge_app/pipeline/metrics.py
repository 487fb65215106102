"""Per-stream throughput and latency, and inference latency, for the health heartbeat and benchmarks.

Why percentiles, not means: a pipeline that is "fine on average" can still stall one frame in twenty
(a GC pause, a batch that waited for a slow decoder). p95 is what an operator feels; p50 is the typical
case. Both come from a bounded window of the latest samples, so memory stays constant on a device
that runs for months, and the figures describe *recent* behaviour rather than the whole uptime.

fps is measured over a sliding time window (default 5 s) of completion times, so it drops to zero
when a camera stops, instead of decaying slowly like a lifetime average would.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np


class LatencyWindow:
    """The last ``size`` samples (seconds); thread-safe percentiles in milliseconds."""

    def __init__(self, size: int = 2048) -> None:
        self._samples: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._samples.append(seconds)

    def __len__(self) -> int:
        with self._lock:
            return len(self._samples)

    def percentiles_ms(self, *qs: float) -> list[float | None]:
        with self._lock:
            data = np.fromiter(self._samples, dtype=np.float64)
        if data.size == 0:
            return [None for _ in qs]
        return [round(float(v) * 1000.0, 2) for v in np.percentile(data, qs)]


class RateMeter:
    """Events per second over the last ``window_s`` seconds (``now`` injectable for tests)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()
        self._first: float | None = None

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._first is None:
                self._first = now
            self._times.append(now)
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            if not self._times or self._first is None:
                return 0.0
            span = min(self.window_s, now - self._first)
            return len(self._times) / span if span > 0 else 0.0


@dataclass
class StreamMetrics:
    """Counters for one stream. ``latency`` is decode -> counted (end to end inside the app)."""

    name: str
    frames_in: int = 0
    frames_done: int = 0
    dropped: int = 0
    latency: LatencyWindow = field(default_factory=LatencyWindow)
    fps_meter: RateMeter = field(default_factory=RateMeter)
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def frame_in(self) -> None:
        with self._lock:
            self.frames_in += 1

    def frame_done(self, decoded_at: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self.frames_done += 1
        self.latency.add(now - decoded_at)
        self.fps_meter.tick(now)

    def average_fps(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        elapsed = now - self.started
        return self.frames_done / elapsed if elapsed > 0 else 0.0

    def snapshot(self) -> dict:
        p50, p95 = self.latency.percentiles_ms(50, 95)
        return {
            "fps": round(self.fps_meter.rate(), 2),
            "frames": self.frames_done,
            "dropped_frames": self.dropped,
            "latency_ms": {"p50": p50, "p95": p95},
        }


class PipelineMetrics:
    """All streams' metrics plus the inference worker(s)' batch latency and batch sizes."""

    def __init__(self, stream_names: list[str]) -> None:
        self.streams = {name: StreamMetrics(name) for name in stream_names}
        self.inference = LatencyWindow()
        """Seconds per detector call (one batch)."""
        self.inference_per_frame = LatencyWindow()
        self._batch_sizes: deque[int] = deque(maxlen=2048)
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.busy_s = 0.0
        """Seconds the inference worker(s) spent inside the detector."""

    def mark_start(self) -> None:
        """Start the clocks of the rates and the busy fraction (when the pipeline starts, not when built)."""
        self.started = time.monotonic()
        for stream in self.streams.values():
            stream.started = self.started

    def record_batch(self, size: int, seconds: float) -> None:
        self.inference.add(seconds)
        self.inference_per_frame.add(seconds / max(size, 1))
        with self._lock:
            self._batch_sizes.append(size)
            self.busy_s += seconds

    def inference_busy(self, now: float | None = None) -> float:
        """Fraction of the time since start that inference was running (per worker on average).

        Near 1: the detector is the bottleneck, as it should be. Well below 1 while frames are being
        dropped or files are slow: the feeding (decoding, preprocessing) cannot keep the detector busy.
        """
        elapsed = (time.monotonic() if now is None else now) - self.started
        return min(1.0, self.busy_s / elapsed) if elapsed > 0 else 0.0

    def mean_batch_size(self) -> float | None:
        with self._lock:
            return round(sum(self._batch_sizes) / len(self._batch_sizes), 2) if self._batch_sizes else None

    def snapshot(self) -> dict:
        p50, p95 = self.inference.percentiles_ms(50, 95)
        return {
            "streams": {name: m.snapshot() for name, m in self.streams.items()},
            "inference_latency_ms": {"p50": p50, "p95": p95},
            "inference_busy": round(self.inference_busy(), 3),
            "mean_batch_size": self.mean_batch_size(),
        }

"""`DashboardState`: what the dashboard shows, fed by the running app, read by the web server.

Writers are the app's own threads: each stream's post-processing thread (frames, and the events its
counter produces, tapped where they are committed to the publisher), and whatever produces anomaly
results through the same publisher. Readers are the server's request handlers. So everything is behind
one lock, and writers only do O(1) work under it (append to bounded deques, replace a reference):
the dashboard must never slow counting down. Drawing and JPEG encoding happen on the readers' side
(see `frames`), except one snapshot per completed bin (a few ms every few minutes).

Why tap the app instead of subscribing to MQTT: the dashboard must work when the broker is down
(exactly when an operator wants to look), and shows what the counter decided, not what was delivered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_app.dashboard.frames import FrameSlot, FrameView, annotate, encode_jpeg
from edge_app.dashboard.history import CountHistory, downsample, merge
from edge_app.events import AnomalyResult, BinCompleted, CountUpdate, Event

log = logging.getLogger(__name__)

MAX_EVENTS = 200
MAX_SNAPSHOTS = 50
HEALTH_CACHE_S = 1.0


@dataclass
class StreamInfo:
    """What the dashboard knows about a configured stream before any frame arrives."""

    name: str
    line: str
    roi: list[tuple[float, float]] | None = None
    """The polygon the counter uses now (replaced when the ROI editor applies a new one)."""


@dataclass
class _Counts:
    local: int = 0
    global_count: int = 0
    bins_completed: int = 0
    bin_id: int = 1
    visible: int = 0
    updated_at: float | None = None
    history: CountHistory = field(default_factory=CountHistory)


class DashboardState:
    """Thread-safe store of counts, history, recent events, latest frames and health."""

    def __init__(self, streams: Sequence[StreamInfo], *, now: Callable[[], float] = time.time) -> None:
        if not streams:
            raise ValueError("the dashboard needs at least one stream")
        self.streams = {s.name: s for s in streams}
        self._now = now
        self._lock = threading.RLock()
        self._counts = {s.name: _Counts() for s in streams}
        self._frames = {s.name: FrameSlot() for s in streams}
        self._fullest: dict[str, FrameView] = {}
        self._bins: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self._anomalies: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self._snapshots: dict[int, bytes] = {}
        self._seq = 0
        self.version = 0
        """Incremented on every change of counts or events: the SSE loop sends an update when it moves."""
        self.closed = threading.Event()
        """Set at shutdown: long-lived responses (SSE, MJPEG) end so the server can stop."""
        self._health_source: Callable[[], dict] = dict
        self._health_cache: tuple[float, dict] | None = None

    # -- writers (app threads) --------------------------------------------------------------------
    def seed(self, stream: str, *, local: int, global_count: int, bins_completed: int, bin_id: int) -> None:
        """Counts restored from the outbox at start-up, shown before the first event of this run."""
        with self._lock:
            c = self._counts[stream]
            c.local, c.global_count, c.bins_completed, c.bin_id = local, global_count, bins_completed, bin_id
            c.history.add(self._now(), local + global_count, global_count)
            self.version += 1

    def on_events(self, events: Sequence[Event]) -> None:
        """Called with every batch the app commits to its publisher (same thread as the counter)."""
        for event in events:
            if event.stream not in self._counts:
                continue
            if isinstance(event, CountUpdate):
                self._on_count(event)
            elif isinstance(event, BinCompleted):
                self._on_bin(event)
            elif isinstance(event, AnomalyResult):
                self._on_anomaly(event)

    def _on_count(self, e: CountUpdate) -> None:
        with self._lock:
            c = self._counts[e.stream]
            c.local, c.global_count, c.bins_completed, c.bin_id, c.visible = (
                e.local, e.global_count, e.bins_completed, e.bin_id, e.visible)
            c.updated_at = e.wall_time
            c.history.add(e.wall_time, e.local + e.global_count, e.global_count)
            self.version += 1

    def _on_bin(self, e: BinCompleted) -> None:
        snapshot = self._bin_snapshot(e)
        with self._lock:
            c = self._counts[e.stream]
            c.global_count, c.bins_completed, c.bin_id, c.local = e.global_count, e.bin_id, e.bin_id + 1, 0
            c.updated_at = e.wall_time
            c.history.add(e.wall_time, e.global_count, e.global_count)
            self._seq += 1
            self._bins.append({"id": self._seq, "stream": e.stream, "line": e.line, "bin_id": e.bin_id,
                               "trays": e.trays, "start_t": e.start_t, "end_t": e.end_t,
                               "global_count": e.global_count, "wall_time": e.wall_time})
            if snapshot is not None:
                self._snapshots[self._seq] = snapshot
                while len(self._snapshots) > MAX_SNAPSHOTS:
                    del self._snapshots[min(self._snapshots)]
            self.version += 1

    def _bin_snapshot(self, e: BinCompleted) -> bytes | None:
        """The frame of the bin with the most trays visible (the bin is usually gone when it completes)."""
        with self._lock:
            view = self._fullest.get(e.stream)
        if view is None or view.bin_id != e.bin_id:
            view = self._frames[e.stream].view
        if view is None:
            return None
        try:
            return encode_jpeg(annotate(view))
        except Exception:  # noqa: BLE001 - a snapshot is a nicety; the count must go on
            log.exception("dashboard: bin snapshot of %s failed", e.stream)
            return None

    def _on_anomaly(self, e: AnomalyResult) -> None:
        with self._lock:
            self._seq += 1
            self._anomalies.append({"id": self._seq, "stream": e.stream, "line": e.line, "t": e.t,
                                    "score": e.score, "is_anomalous": e.is_anomalous,
                                    "area_percent": e.area_percent, "wall_time": e.wall_time,
                                    "snapshot_path": e.snapshot_path})
            self.version += 1

    def on_frame(self, view: FrameView) -> None:
        """The latest processed frame of a stream (a reference; nothing is drawn here)."""
        self._frames[view.stream].put(view)
        with self._lock:
            best = self._fullest.get(view.stream)
            if best is None or best.bin_id != view.bin_id or view.visible >= best.visible:
                self._fullest[view.stream] = view

    def set_health_source(self, source: Callable[[], dict]) -> None:
        """``source()`` returns the heartbeat dict (app metrics + outbox + broker); called at most 1/s."""
        with self._lock:
            self._health_source = source
            self._health_cache = None

    def set_roi(self, stream: str, points: list[tuple[float, float]] | None) -> None:
        with self._lock:
            self.streams[stream].roi = points
            self.version += 1

    def close(self) -> None:
        self.closed.set()

    # -- readers (server) -------------------------------------------------------------------------
    def lines(self) -> list[dict[str, Any]]:
        """One entry per line (in config order), each with its streams' counts."""
        now = self._now()
        health = self.health().get("streams", {})
        by_line: dict[str, list[dict[str, Any]]] = {}
        with self._lock:
            for name, info in self.streams.items():
                c = self._counts[name]
                by_line.setdefault(info.line, []).append({
                    "stream": name, "line": info.line, "local": c.local, "global_count": c.global_count,
                    "bins_completed": c.bins_completed, "bin_id": c.bin_id, "visible": c.visible,
                    "trays_per_hour": c.history.rate_per_hour(now), "updated_at": c.updated_at,
                    "fps": (health.get(name) or {}).get("fps"), "has_frame": self._frames[name].view is not None,
                    "frame_url": f"/api/frame/{name}.jpg", "mjpeg_url": f"/api/stream/{name}.mjpg",
                })
        return [_line_total(line, streams) for line, streams in by_line.items()]

    def line(self, line: str, minutes: float = 60.0) -> dict[str, Any] | None:
        status = next((entry for entry in self.lines() if entry["line"] == line), None)
        if status is None:
            return None
        t0 = self._now() - minutes * 60.0
        with self._lock:
            series = [self._counts[s["stream"]].history.since(t0) for s in status["streams"]]
        points = downsample(merge(series))
        return {**status, "history": [{"t": t, "total": total, "global_count": g} for t, total, g in points]}

    def line_of(self, stream: str) -> str | None:
        info = self.streams.get(stream)
        return info.line if info else None

    def bins(self, limit: int = 50, line: str | None = None, after: int = 0) -> list[dict[str, Any]]:
        """Newest first."""
        with self._lock:
            rows = [dict(b) for b in self._bins if b["id"] > after and (line is None or b["line"] == line)]
            for row in rows:
                row["snapshot_url"] = f"/api/bins/{row['id']}/snapshot.jpg" if row["id"] in self._snapshots else None
        return rows[::-1][:limit]

    def anomalies(self, limit: int = 50, line: str | None = None, after: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            rows = [dict(a) for a in self._anomalies if a["id"] > after and (line is None or a["line"] == line)]
        for row in rows:
            path = row.pop("snapshot_path")
            row["snapshot_url"] = f"/api/anomalies/{row['id']}/snapshot.jpg" if path else None
        return rows[::-1][:limit]

    def bin_snapshot(self, event_id: int) -> bytes | None:
        with self._lock:
            return self._snapshots.get(event_id)

    def anomaly_snapshot(self, event_id: int) -> Path | None:
        with self._lock:
            row = next((a for a in self._anomalies if a["id"] == event_id), None)
        path = Path(row["snapshot_path"]) if row and row["snapshot_path"] else None
        return path if path is not None and path.is_file() else None

    def frame(self, stream: str) -> FrameSlot:
        return self._frames[stream]

    def health(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            if self._health_cache is not None and now - self._health_cache[0] < HEALTH_CACHE_S:
                return self._health_cache[1]
            source = self._health_source
        try:
            health = dict(source())
        except Exception:  # noqa: BLE001 - a half-started app still gets a page
            log.debug("dashboard: health not available yet", exc_info=True)
            health = {}
        with self._lock:
            self._health_cache = (now, health)
        return health


def _line_total(line: str, streams: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [s["trays_per_hour"] for s in streams if s["trays_per_hour"] is not None]
    return {"line": line, "local": sum(s["local"] for s in streams),
            "global_count": sum(s["global_count"] for s in streams),
            "bins_completed": sum(s["bins_completed"] for s in streams),
            "trays_per_hour": round(sum(rates), 1) if rates else None, "streams": streams}

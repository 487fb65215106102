"""Wiring the dashboard into `edge-app run`: options, taps on the app, uvicorn in a background thread.

Where the dashboard hooks in, and why there:

* events: around the app's `EventPublisher` (inside its serializing wrapper), because every event the
  app produces - counts, bins, anomaly results, whoever makes them - is committed there, once;
* frames: a thin handler around each `StreamProcessor`, given to the pipeline instead of it; after the
  processor has counted the frame it hands `DashboardState` a reference to the frame and the counter's
  figures (drawing happens only when a browser asks, see `frames`);
* health: the app's own heartbeat collector plus `EventPublisher.stats()` (outbox depth, broker link),
  read on request, at most once a second;
* ROI: the editor's new polygon replaces the processor's `Roi` between two frames (one reference
  assignment, atomic in Python), so counting continues without a restart.

The server socket is bound here, before the thread starts, so a port in use is one clear error line at
start-up instead of a traceback in a background thread.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from typing import Any

from edge_app.config import AppConfig
from edge_app.dashboard.frames import FrameView
from edge_app.dashboard.options import DashboardOptions
from edge_app.dashboard.state import DashboardState, StreamInfo
from edge_app.detections import Detections
from edge_app.errors import EdgeAppError
from edge_app.events import Event
from edge_app.frame import Frame

log = logging.getLogger(__name__)


class PublisherTap:
    """The app's publisher, plus: every committed batch of events is shown on the dashboard."""

    def __init__(self, publisher: Any, state: DashboardState) -> None:
        self.publisher = publisher
        self.state = state

    def commit(self, events: Sequence[Event], counter_states: Mapping[str, dict] | None = None) -> None:
        self.publisher.commit(events, counter_states)
        try:
            self.state.on_events(events)
        except Exception:  # noqa: BLE001 - the dashboard must never break counting
            log.exception("dashboard: showing events failed")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.publisher, name)


class FrameTap:
    """The pipeline's handler for one stream: the `StreamProcessor`, then the frame to the dashboard."""

    def __init__(self, processor: Any, state: DashboardState) -> None:
        self.processor = processor
        self.state = state

    def __call__(self, frame: Frame, detections: Detections) -> None:
        self.processor(frame, detections)
        p, counter = self.processor, self.processor.counter
        try:
            self.state.on_frame(FrameView(
                p.stream, frame.index, frame.image, detections, p._wanted, p.roi, counter.local,
                counter.global_count, getattr(counter, "bin_id", 0), getattr(counter, "visible", 0),
                p.fps() if p.fps else None,
            ))
        except Exception:  # noqa: BLE001 - the dashboard must never break counting
            log.exception("dashboard: showing a frame of %s failed", p.stream)


class RoiSwitch:
    """Applies a saved ROI to the running counter (see the module doc)."""

    def __init__(self, cfg: AppConfig, processors: Mapping[str, Any], state: DashboardState) -> None:
        self.masked = {s.name for s in cfg.streams if s.mask_outside_roi}
        self.processors = processors
        self.state = state

    def __call__(self, stream: str, points: list[tuple[float, float]]) -> tuple[bool, str]:
        from edge_app.roi import Roi

        self.processors[stream].roi = Roi(points)
        self.state.set_roi(stream, points)
        log.info("dashboard: stream %s counts inside the new ROI %s", stream, points)
        if stream in self.masked:
            return True, ("saved; the counter uses the new ROI now, but the mask outside it (mask_outside_roi) "
                          "changes only after a restart of edge-app run")
        return True, "saved; the counter uses the new ROI from the next frame"


class DashboardServer:
    """uvicorn serving ``app`` on an already bound socket, in a daemon thread."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self.socket = socket.create_server((host, port), family=family)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise EdgeAppError(f"--dashboard {port}: cannot listen on {host}:{port} ({reason})") from None
        self.host = host
        self.port = int(self.socket.getsockname()[1])
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]},
                                       name="dashboard", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            self.stop()
            raise EdgeAppError(f"--dashboard {self.port}: the web server did not start (see the log above)")

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(5)
        self.socket.close()


def attach_dashboard(options: DashboardOptions, cfg: AppConfig, processors: Mapping[str, Any], publisher: Any,
                     health: Callable[[], dict], stack: ExitStack) -> dict[str, Any]:
    """Start the dashboard for a run; returns the handlers to give the pipeline instead of ``processors``.

    ``publisher``: the app's serializing wrapper, whose ``publisher`` attribute is the `EventPublisher`
    (tapped in place). ``health``: the app's heartbeat collector. Stopped through ``stack``.
    """
    from edge_app.dashboard.server import create_app

    state = DashboardState([StreamInfo(s.name, s.line_id, [tuple(p) for p in s.roi] if s.roi else None)
                            for s in cfg.streams])
    for name, processor in processors.items():
        c = processor.counter
        state.seed(name, local=c.local, global_count=c.global_count, bins_completed=len(c.bins),
                   bin_id=getattr(c, "bin_id", len(c.bins) + 1))
    event_publisher = publisher.publisher
    publisher.publisher = PublisherTap(event_publisher, state)

    def full_health() -> dict:
        try:
            app_health = health()
        except AssertionError:  # asked before the pipeline exists: publisher figures only
            app_health = {}
        stats = event_publisher.stats()
        return {**app_health, "outbox": stats.get("outbox"), "broker": stats.get("broker"),
                "disk_full": stats.get("disk_full", False)}

    state.set_health_source(full_health)
    app = create_app(state, options.config_path, token=options.token, apply_roi=RoiSwitch(cfg, processors, state),
                     frame_fps=options.frame_fps, site=cfg.site)
    server = DashboardServer(app, options.host, options.port)
    server.start()
    stack.callback(server.stop)
    stack.callback(state.close)  # runs first: ends SSE/MJPEG responses so the server stops promptly
    log.info("dashboard: %s%s", server.url, " (token required)" if options.token else "")
    return {name: FrameTap(processor, state) for name, processor in processors.items()}

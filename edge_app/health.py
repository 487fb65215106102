"""Health heartbeat: every N seconds, one message saying the app is alive and how well it keeps up.

Why a heartbeat and not only the retained ``online`` status: a process can be connected yet useless (a
camera unplugged, inference 10x slower after a thermal throttle, frames dropped under overload). The
heartbeat carries what an operator needs to tell those apart: per-stream fps, dropped frames and
latency, inference latency p50/p95, and the model version (so a dashboard shows which model counted).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class HealthReporter(threading.Thread):
    """Calls ``publish(collect())`` now and then every ``interval_s`` until :meth:`stop`."""

    def __init__(self, interval_s: float, collect: Callable[[], dict], publish: Callable[[dict], None]) -> None:
        super().__init__(name="health", daemon=True)
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.interval_s = interval_s
        self.collect = collect
        self.publish = publish
        self._stop_event = threading.Event()
        self.sent = 0

    def beat(self) -> dict:
        health = self.collect()
        try:
            self.publish(health)
            self.sent += 1
        except Exception:  # noqa: BLE001 - a publishing hiccup must never stop the heartbeat
            log.exception("health: publishing failed")
        log.info("health: %s", format_health(health))
        return health

    def run(self) -> None:
        while True:
            self.beat()
            if self._stop_event.wait(self.interval_s):
                return

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(5)


def format_health(health: dict) -> str:
    """One log line: ``line-1 24.9 fps 0 dropped p95 80 ms | inference p50 12 ms p95 15 ms``."""
    parts = [
        f"{name} {s.get('fps', 0):.1f} fps {s.get('dropped_frames', 0)} dropped "
        f"p95 {s.get('latency_ms', {}).get('p95')} ms"
        for name, s in health.get("streams", {}).items()
    ]
    inference = health.get("inference_latency_ms", {})
    parts.append(f"inference p50 {inference.get('p50')} ms p95 {inference.get('p95')} ms")
    return " | ".join(parts)

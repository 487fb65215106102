"""Shared by the dashboard tests: a running `edge-app run --dashboard` on a looping video, and an SSE reader.

The app runs the tiny slot detector of `app_fixtures` (real ONNX Runtime, counts known by construction on
the `bins_video`; on a rendered sim video it "detects" bright cells, so its counts are arbitrary but they
move). Videos loop, so the app runs until the test stops it with SIGTERM (the clean stop path).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml
from app_fixtures import slot_detector_onnx
from conftest import CACHE, REPO

EDGE_APP = REPO / ".venv" / "bin" / "edge-app"


def slot_model() -> Path:
    model = CACHE / "app" / "slot_detector.onnx"
    if not model.is_file():
        slot_detector_onnx(model)
    return model


def write_app_config(folder: Path, video: Path, *, roi: list[list[float]] | None = None, site: str = "test-plant",
                     stream: str = "line-1", score_threshold: float = 0.5) -> Path:
    """A config with a comment (the ROI editor must keep it), publishing off, the video looping."""
    entry: dict = {"name": stream, "uri": str(video), "loop": True,
                   "counter": {"window": 4, "min_drop": 1, "smoothing": 3, "zero_frames": 5, "confirm_s": 0.5}}
    if roi is not None:
        entry["roi"] = roi
    config = {"site": site, "state_dir": str(folder / "state"),
              "model": {"path": str(slot_model()), "input_size": [64, 64], "batch_size": 4,
                        "score_threshold": score_threshold},
              "streams": [entry], "mqtt": {"enabled": False}, "pipeline": {"health_interval_s": 1.0}}
    path = folder / "config.yaml"
    path.write_text("# written by the dashboard tests\n" + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@contextmanager
def running_app(config: Path, port: int, *extra: str) -> Iterator[str]:
    """``edge-app run --dashboard port`` until the block ends (SIGTERM, then a clean exit is asserted)."""
    app = subprocess.Popen(["nice", "-n", "10", str(EDGE_APP), "run", "--config", str(config), "--dashboard",
                            str(port), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            if app.poll() is not None:
                raise AssertionError(f"edge-app exited early: {app.communicate()[1][-3000:]}")
            try:
                if httpx.get(url + "api/lines", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the dashboard did not come up within 60 s")
            time.sleep(0.2)
        yield url
        app.send_signal(signal.SIGTERM)
        _, err = app.communicate(timeout=60)
        assert app.returncode == 0, err[-3000:]
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()


def wait_for(predicate, timeout: float = 30.0, every: float = 0.2):  # noqa: ANN001, ANN201 - test helper
    """Poll ``predicate()`` until it returns something truthy; return it (fail after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s")


def sse_events(response: httpx.Response) -> Iterator[tuple[str, object]]:
    """``(event name, parsed data)`` from a ``text/event-stream`` response, as they arrive."""
    name, data = "message", []
    for line in response.iter_lines():
        if line == "":
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())

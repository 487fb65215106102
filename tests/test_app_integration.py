"""`edge-app run` end to end: real console script, real mosquitto, real ONNX Runtime, a generated video.

The video and the tiny slot detector (see `app_fixtures`) make every count known in advance: bins of 5
and 3 trays. So these tests check the app's behaviour - messages, replay, signals, a broker that is down -
on exact numbers rather than on whatever an untrained network happens to see.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from conftest import CACHE, REPO, Broker, free_port

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app_fixtures import bins_video, slot_detector_onnx  # noqa: E402

EDGE_APP = REPO / ".venv" / "bin" / "edge-app"
PREFIX = "test/plant"
BINS = [5, 3]


@pytest.fixture(scope="module")
def assets() -> dict[str, Path]:
    folder = CACHE / "app"
    model = folder / "slot_detector.onnx"
    video = folder / "bins_5_3" / "video.mp4"
    if not model.is_file():
        slot_detector_onnx(model)
    if not video.is_file():
        bins_video(video, BINS)
    return {"model": model, "video": video}


def write_config(tmp: Path, assets: dict[str, Path], port: int, **stream_extra: object) -> Path:
    config = {
        "site": "test-plant",
        "state_dir": str(tmp / "state"),
        "model": {"path": str(assets["model"]), "input_size": [64, 64], "batch_size": 4},
        "streams": [{
            "name": "line-1", "uri": str(assets["video"]),
            "roi": [[0, 0], [320, 0], [320, 240], [0, 240]],
            "counter": {"window": 4, "min_drop": 1, "smoothing": 3, "zero_frames": 5, "confirm_s": 0.5},
            **stream_extra,
        }],
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": PREFIX, "client_id": "edge-app-test"},
        "pipeline": {"health_interval_s": 0.5},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


class Subscriber:
    """Collects ``(topic, payload dict, retain)`` from ``<prefix>/#``."""

    def __init__(self, broker: Broker) -> None:
        self.messages: list[tuple[str, dict, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{PREFIX}/#", qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "subscription not acknowledged"

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, json.loads(msg.payload), bool(msg.retain)))

    def on(self, topic: str) -> list[dict]:
        with self._lock:
            return [payload for t, payload, _ in self.messages if t == f"{PREFIX}/{topic}"]

    def wait_for(self, topic: str, n: int, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.on(topic)) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.on(topic)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def run_app(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(EDGE_APP), *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def last_json_line(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def is_iso_utc(text: str) -> bool:
    return text.endswith("Z") and datetime.fromisoformat(text.replace("Z", "+00:00")).utcoffset().total_seconds() == 0


def test_run_publishes_and_its_recording_replays_to_the_same_totals(broker: Broker, tmp_path: Path,
                                                                     assets: dict[str, Path]) -> None:
    config = write_config(tmp_path, assets, broker.port)
    sub = Subscriber(broker)
    recording, annotated = tmp_path / "detections.jsonl", tmp_path / "annotated"
    try:
        done = run_app("run", "--config", str(config), "--record-detections", str(recording),
                       "--annotate", str(annotated), "--log-level", "DEBUG")
        bins = sub.wait_for("line-1/bin", len(BINS))
        sub.wait_for("status", 2)  # online, then offline at the clean stop
    finally:
        sub.close()

    summary = last_json_line(done.stdout)["streams"]["line-1"]
    assert summary["bins"] == BINS and summary["trays"] == sum(BINS) == summary["true_total"]
    assert summary["error_percent"] == 0.0 and summary["frames"] > 0
    assert "DEBUG" in done.stderr  # --log-level reached the logging set-up

    states = [m["state"] for m in sub.on("status")]
    assert states[0] == "online" and states[-1] == "offline"
    assert [b["trays"] for b in bins] == BINS
    assert [b["global"] for b in bins] == [5, 8] and [b["bin_id"] for b in bins] == [1, 2]
    counts = sub.on("line-1/count")
    assert counts and max(c["global"] for c in counts) == sum(BINS)
    for message in [*bins, *counts]:
        assert message["schema_version"] == 1 and message["line"] == "line-1" and message["site"] == "test-plant"
        assert is_iso_utc(message["timestamp"]) and message["id"]
    assert {"local", "global", "bin_id", "bins_completed", "t"} <= set(counts[0])
    assert {"trays", "start_t", "end_t", "global", "bin_id"} <= set(bins[0])
    health = sub.on("health")
    assert health and health[-1]["model_version"] == "test-slot-detector-1"
    assert {"fps", "dropped_frames", "latency_ms"} <= set(health[-1]["streams"]["line-1"])
    assert "p95" in health[-1]["inference_latency_ms"]

    replayed = run_app("count", "--detections", str(recording), "--config", str(config))
    assert last_json_line(replayed.stdout)["streams"]["line-1"] == {"global": summary["trays"], "bins": summary["bins"]}

    import cv2

    video = cv2.VideoCapture(str(annotated / "line-1.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == summary["frames"]
    video.release()


def test_the_status_stays_retained_for_late_subscribers(broker: Broker, tmp_path: Path,
                                                        assets: dict[str, Path]) -> None:
    run_app("run", "--config", str(write_config(tmp_path, assets, broker.port)), "--max-frames", "20")
    late = Subscriber(broker)  # subscribes after the app has gone
    try:
        deadline = time.monotonic() + 10
        while not late.messages and time.monotonic() < deadline:
            time.sleep(0.05)
        topic, payload, retained = late.messages[0]
    finally:
        late.close()
    assert topic == f"{PREFIX}/status" and retained and payload["state"] == "offline"


def test_sigterm_stops_cleanly_and_a_restart_resumes_the_global_count(broker: Broker, tmp_path: Path,
                                                                       assets: dict[str, Path]) -> None:
    config = write_config(tmp_path, assets, broker.port, loop=True)  # a looping file never ends by itself
    sub = Subscriber(broker)
    try:
        app = subprocess.Popen([str(EDGE_APP), "run", "--config", str(config)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        try:
            assert len(sub.wait_for("line-1/bin", 3)) >= 3, "the app never completed three bins"
            app.send_signal(signal.SIGTERM)
            _, err = app.communicate(timeout=60)
        finally:
            if app.poll() is None:
                app.kill()
        assert app.returncode == 0, err[-3000:]
        assert "stopping (SIGTERM)" in err
        last_global = max(b["global"] for b in sub.on("line-1/bin"))
    finally:
        sub.close()

    resumed = run_app("run", "--config", str(write_config(tmp_path, assets, broker.port)), "--max-frames", "10")
    summary = last_json_line(resumed.stdout)["streams"]["line-1"]
    assert summary["global_count"] >= last_global > 0  # the saved state was restored, not reset to zero


def test_a_broker_that_is_down_does_not_stop_counting(tmp_path: Path, assets: dict[str, Path]) -> None:
    config = write_config(tmp_path, assets, free_port())  # nothing listens there
    done = run_app("run", "--config", str(config))
    summary = last_json_line(done.stdout)["streams"]["line-1"]
    assert summary["bins"] == BINS

    from edge_app.config import load_config
    from edge_app.publish.outbox import Outbox

    outbox = Outbox.from_config(load_config(config))
    try:
        assert outbox.depth > 0  # the undelivered messages wait in the outbox for the next start
    finally:
        outbox.close()

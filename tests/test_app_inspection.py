"""`edge-app run` with an ``inspections:`` entry: anomaly events from the running app reach mosquitto.

The video shows a carrier part in the inspection ROI: normal for the first half, with a missing pin in the
second half. The app counts (nothing, here) and inspects every 5th frame; a trigger topic inspects on demand.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml
from anomaly_helpers import cached_dataset_and_model
from app_fixtures import slot_detector_onnx
from delivery_helpers import Collector, wait_until

from edge_app.app import EdgeApp
from edge_app.config import load_config
from sim.anomaly_parts import render_part

ROI = (300, 60, 256, 256)
FRAMES = 40


def _video(path: Path) -> Path:
    rng = np.random.default_rng(5)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 400))
    normal = render_part("carrier", rng)[0]
    defect = render_part("carrier", rng, "missing_pin")[0]
    for i in range(FRAMES):
        image = np.full((400, 640, 3), 90, np.uint8)
        x, y, w, h = ROI
        image[y:y + h, x:x + w] = normal if i < FRAMES // 2 else defect
        writer.write(image)
    writer.release()
    return path


def test_running_app_publishes_anomaly_events(broker, tmp_path: Path) -> None:
    _, model_dir = cached_dataset_and_model()
    config = {
        "site": "plant", "state_dir": str(tmp_path / "state"),
        "model": {"path": str(slot_detector_onnx(tmp_path / "slots.onnx")), "score_threshold": 0.5},
        "streams": [{"name": "line-1", "uri": str(_video(tmp_path / "parts.avi"))}],
        "inspections": [{"name": "pins", "stream": "line-1", "model_dir": str(model_dir), "roi": list(ROI),
                         "every_n_frames": 5, "snapshot_dir": str(tmp_path / "snaps")}],
        "mqtt": {"host": broker.host, "port": broker.port, "topic_prefix": "t", "client_id": "app-insp"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    sub = Collector(broker.host, broker.port, "t/+/anomaly", client_id="insp-sub")
    try:
        EdgeApp(load_config(path)).run()
        assert wait_until(lambda: len(sub.of_type("anomaly")) == FRAMES // 5, 15)
    finally:
        sub.close()
    results = sorted(sub.of_type("anomaly"), key=lambda p: p["timestamp"])
    flags = [p["is_anomalous"] for p in results]
    # frames 0, 5, 10, 15 show the normal part; 20, 25, 30, 35 the one with a missing pin
    assert flags == [False] * 4 + [True] * 4, flags
    assert all(p["area_percent"] > 0 for p in results[4:])
    assert len(list((tmp_path / "snaps").glob("*"))) >= 4  # anomalous snapshots saved locally

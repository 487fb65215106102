"""End to end: the edge app's inspector scores ROIs of sim frames and an anomaly event reaches mosquitto."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from anomaly_helpers import cached_dataset_and_model
from delivery_helpers import Collector, make_cfg, wait_until

from edge_app.anomaly.inspector import AnomalyInspector
from edge_app.frame import Frame
from edge_app.publish import EventPublisher
from sim.anomaly_parts import render_part

ROI = (300, 60, 256, 256)


def _frame(index: int, part_image: np.ndarray) -> Frame:
    """A 640x400 camera frame with the part inside the inspection ROI and unrelated clutter outside it."""
    image = np.full((400, 640, 3), 90, np.uint8)
    cv2.rectangle(image, (20, 20), (200, 380), (30, 120, 200), -1)  # something else on the line
    x, y, w, h = ROI
    image[y:y + h, x:x + w] = part_image
    return Frame(stream="line-1", index=index, timestamp=index / 10, image=image)


def test_inspector_publishes_anomaly_events_to_mosquitto(broker, tmp_path: Path) -> None:
    _, model_dir = cached_dataset_and_model()
    inspections = [{"name": "pins", "stream": "line-1", "model_dir": str(model_dir), "roi": list(ROI),
                    "every_n_frames": 2, "snapshot_dir": str(tmp_path / "snapshots")}]
    cfg = make_cfg(tmp_path / "state", broker.host, broker.port, inspections=inspections)
    inspector, = AnomalyInspector.from_app_config(cfg)
    rng = np.random.default_rng(11)
    frames = [_frame(0, render_part("carrier", rng)[0]),
              _frame(1, render_part("carrier", rng, "missing_pin")[0]),  # not due: every 2nd frame
              _frame(2, render_part("carrier", rng, "debris")[0])]
    other_stream = Frame(stream="line-2", index=0, timestamp=0.0, image=frames[0].image)

    results = [inspector.inspect(f) for f in frames]
    assert inspector.inspect(other_stream) is None
    assert results[1] is None
    normal, defect = results[0], results[2]
    assert normal is not None and defect is not None
    assert not normal.is_anomalous and normal.score < 0.5 and normal.snapshot_path is None
    assert defect.is_anomalous and defect.score > 0.5 and defect.area_percent > 0
    assert (defect.stream, defect.line, defect.t) == ("line-1", "line-1", 0.2)
    snapshot = Path(defect.snapshot_path)
    assert snapshot.parent == tmp_path / "snapshots" and cv2.imread(str(snapshot)).shape == (256, 512, 3)

    inspector.trigger()  # an external trigger inspects the very next frame, due or not
    assert inspector.inspect(_frame(3, render_part("carrier", rng)[0])) is not None

    sub = Collector(broker.host, broker.port, "t/+/anomaly")
    publisher = EventPublisher(cfg)
    publisher.start()
    publisher.commit([normal, defect])
    assert wait_until(lambda: len(sub.of_type("anomaly")) == 2, 10)
    assert publisher.stop(timeout=5)
    sub.close()
    topics = {topic for topic, _, _ in sub.messages}
    assert topics == {"t/line-1/anomaly"}
    by_flag = {p["is_anomalous"]: p for p in sub.of_type("anomaly")}
    assert by_flag[True]["score"] == defect.score and by_flag[True]["area_percent"] == defect.area_percent
    assert by_flag[True]["snapshot_path"] == str(snapshot)
    assert by_flag[False]["score"] == normal.score

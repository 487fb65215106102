"""`AnomalyInspector`: one configured inspection inside the edge app (frames in, `AnomalyResult` out).

The pipeline calls ``inspect(frame)`` for every frame of every stream; the inspector decides whether this
frame is due (its stream, every n-th frame, or the next frame after ``trigger()``), cuts the configured ROI,
scores it (registration on the host, scoring in ONNX Runtime), saves a snapshot with the heat-map overlay
when configured, and returns an `AnomalyResult` for the publisher (topic ``<prefix>/<line>/anomaly``)::

    inspectors = [AnomalyInspector(i, line=cfg_line) for i in cfg.inspections]
    for frame in frames:
        for inspector in inspectors:
            result = inspector.inspect(frame)      # None when not due or not this inspector's stream
            if result is not None:
                publisher.commit([result])

It is not thread-safe per instance (one stream thread calls it); ``trigger()`` may be called from any thread.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np

from edge_app.anomaly.runtime import AnomalyModel, Prediction, overlay, write_png
from edge_app.config import AppConfig, InspectionConfig
from edge_app.errors import EdgeAppError
from edge_app.events import AnomalyResult
from edge_app.frame import Frame

log = logging.getLogger(__name__)


class AnomalyInspector:
    def __init__(self, config: InspectionConfig, line: str | None = None, model: AnomalyModel | None = None,
                 threads: int = 1) -> None:
        """``line`` defaults to ``config.line`` then to the stream name; pass the stream's ``line_id``."""
        self.config = config
        self.name = config.name
        self.stream = config.stream
        self.line = config.line or line or config.stream
        self.model = model or AnomalyModel(config.model_dir, threads=threads)
        self.snapshot_dir = config.snapshot_dir or Path("state") / "anomaly" / config.name
        self._triggered = threading.Event()
        self._frames_seen = 0
        self.inspected = 0
        self.anomalies = 0
        self.last_prediction: Prediction | None = None

    @classmethod
    def from_app_config(cls, cfg: AppConfig) -> list[AnomalyInspector]:
        """One inspector per ``inspections`` entry, with the line of the stream it watches."""
        lines = {s.name: s.line_id for s in cfg.streams}
        return [cls(i, line=lines.get(i.stream)) for i in cfg.inspections]

    def trigger(self) -> None:
        """Inspect the next frame of this inspector's stream (e.g. on an MQTT message or a PLC signal)."""
        self._triggered.set()

    def due(self, frame: Frame) -> bool:
        if frame.stream != self.stream:
            return False
        self._frames_seen += 1
        if self._triggered.is_set():
            self._triggered.clear()
            return True
        n = self.config.every_n_frames
        return n is not None and (self._frames_seen - 1) % n == 0

    def inspect(self, frame: Frame) -> AnomalyResult | None:
        """Score the frame's ROI if it is due; ``None`` otherwise. Bad frames log a warning and return None."""
        if not self.due(frame):
            return None
        roi_image = self._cut_roi(frame.image)
        if roi_image is None:
            return None
        pred = self.model.predict(roi_image, source=f"{frame.stream}#{frame.index}", apply_roi=False)
        self.inspected += 1
        self.anomalies += pred.is_anomalous
        self.last_prediction = pred
        snapshot = self._save_snapshot(frame, roi_image, pred)
        return AnomalyResult(stream=frame.stream, line=self.line, t=frame.timestamp, score=round(pred.score, 6),
                             is_anomalous=pred.is_anomalous, area_percent=round(pred.area_percent, 4),
                             snapshot_path=str(snapshot) if snapshot else None)

    def _cut_roi(self, image: np.ndarray) -> np.ndarray | None:
        if self.config.roi is None:
            # The whole frame goes to the model, which applies its own training ROI (if any).
            if self.model.roi is not None and (image.shape[1], image.shape[0]) != self.model.image_size:
                log.warning("inspection %s: frame is %dx%d, model expects %dx%d", self.name, image.shape[1],
                            image.shape[0], *self.model.image_size)
                return None
            return self._model_roi(image)
        x, y, w, h = self.config.roi
        if x + w > image.shape[1] or y + h > image.shape[0]:
            log.warning("inspection %s: roi %s does not fit a %dx%d frame", self.name, self.config.roi,
                        image.shape[1], image.shape[0])
            return None
        return np.ascontiguousarray(image[y:y + h, x:x + w])

    def _model_roi(self, image: np.ndarray) -> np.ndarray:
        if self.model.roi is None:
            return image
        x, y, w, h = self.model.roi
        return np.ascontiguousarray(image[y:y + h, x:x + w])

    def _save_snapshot(self, frame: Frame, roi_image: np.ndarray, pred: Prediction) -> Path | None:
        mode = self.config.save_snapshots
        if mode == "none" or (mode == "anomalous" and not pred.is_anomalous):
            return None
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(time.time()))
        path = self.snapshot_dir / f"{stamp}_{frame.stream}_{frame.index:08d}_{pred.score:.3f}.png"
        try:
            write_png(path, np.concatenate([roi_image, overlay(roi_image, pred.anomaly_map)], axis=1))
        except (OSError, EdgeAppError) as exc:
            log.warning("inspection %s: could not save snapshot %s: %s", self.name, path, exc)
            return None
        return path

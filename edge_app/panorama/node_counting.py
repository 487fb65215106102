"""What the Panorama code node does with each frame, without the SDK: the same stages as ``edge-app run``.

The appliance hands the node frames (``stream.image``) and runs the compiled model for it
(``self.call``); everything between is edge_app's own code, so counts on a Panorama appliance and on a
Jetson/PC running ``edge-app run`` come from the same implementation:

    image -> `Preprocessor` (GluonCV's stretch + mean/std, NCHW) -> model node (3 GluonCV outputs)
          -> `decode_batch` -> `StreamProcessor` (score threshold, ROI, `BinCounter`, `EventPublisher`)
          -> overlay: normalised boxes of the counted trays and a label with the line's counts.

Graph parameters arrive as plain values; :class:`NodeSettings` validates them once at start-up (pydantic,
like the YAML config) so a bad override is one clear log line on the appliance, not a crash mid-shift.
Counter states and the MQTT outbox live in the node's storage folder (``/opt/aws/panorama/storage``), so
a restarted application resumes counting where it stopped.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edge_app.config import AppConfig, CounterParams, MqttConfig, StreamConfig, format_validation_error
from edge_app.errors import EdgeAppError

log = logging.getLogger("edge_app.panorama.node")

CLASS_NAMES = ("tray",)
HEALTH_INTERVAL_S = 30.0


class NodeSettings(BaseModel):
    """The code node's graph parameters (names = the input ports of ``tray_counter_code.interface``)."""

    model_config = ConfigDict(extra="forbid")

    score_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    model_input_size: Annotated[int, Field(ge=32, le=4096)] = 300
    counter_window: Annotated[int, Field(ge=2, le=600)] = 8
    counter_params: str = "{}"
    site_id: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")] = "site-1"
    line_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.,-]*$")] = ""
    mqtt_endpoint: str = ""
    roi_polygons: str = "{}"

    @field_validator("counter_params", "roi_polygons")
    @classmethod
    def _json_object(cls, text: str) -> str:
        try:
            value = json.loads(text or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"expected a JSON object ({exc.msg})") from None
        if not isinstance(value, dict):
            raise ValueError("expected a JSON object")
        return text or "{}"

    @field_validator("mqtt_endpoint")
    @classmethod
    def _host_port(cls, text: str) -> str:
        if text and not re.fullmatch(r"(mqtt://)?[A-Za-z0-9_.-]+(:\d{1,5})?", text.strip()):
            raise ValueError("expected host or host:port (empty: keep counts in local storage only)")
        return text.strip()

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> NodeSettings:
        try:
            settings = cls.model_validate(values)
            settings.counter()  # the counter JSON is checked now, not at the first frame
        except ValidationError as exc:
            raise EdgeAppError(format_validation_error("graph parameter", exc)) from None
        return settings

    def counter(self) -> CounterParams:
        """`CounterParams` from ``counter_params`` (JSON) with ``counter_window`` as its ``window``."""
        return CounterParams.model_validate({**json.loads(self.counter_params), "window": self.counter_window})

    def mqtt(self) -> MqttConfig:
        if not self.mqtt_endpoint:
            return MqttConfig(enabled=False)
        host, _, port = self.mqtt_endpoint.removeprefix("mqtt://").partition(":")
        return MqttConfig(host=host, port=int(port or 1883), topic_prefix=f"edge-app/{self.site_id}",
                          client_id=f"edge-app-panorama-{self.site_id}")

    def lines(self) -> list[str]:
        return [p.strip() for p in self.line_id.split(",") if p.strip()]

    def rois(self) -> dict[str, list]:
        return dict(json.loads(self.roi_polygons))


@dataclass
class Overlay:
    """What to draw on one HDMI frame: boxes as ``(x1, y1, x2, y2)`` in 0..1, labels as ``(text, x, y)``."""

    rects: list[tuple[float, float, float, float]] = field(default_factory=list)
    labels: list[tuple[str, float, float]] = field(default_factory=list)


def stream_name(stream_id: object) -> str:
    """A Panorama stream id as an edge-app stream name (letters, digits, ``_.-``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(stream_id)).strip("_") or "camera"


def timestamp_seconds(time_stamp: object, fallback: float) -> float:
    """The SDK's ``time_stamp`` (``(seconds, microseconds)`` or a number) in seconds."""
    if isinstance(time_stamp, (tuple, list)) and len(time_stamp) == 2:
        return float(time_stamp[0]) + float(time_stamp[1]) / 1e6
    if isinstance(time_stamp, (int, float)):
        return float(time_stamp)
    return fallback


class NodeCounting:
    """Per-stream counting state of the code node; streams are discovered from the first frames."""

    def __init__(self, settings: NodeSettings, storage_dir: Path) -> None:
        from edge_app.detectors.preprocess import Preprocessor

        self.settings = settings
        self.storage_dir = Path(storage_dir)
        size = settings.model_input_size
        self.input_size = (size, size)
        self.preprocess = Preprocessor(self.input_size)
        self.publisher: Any = None
        self.processors: dict[str, Any] = {}
        self.frames: dict[str, int] = {}
        self._started = time.monotonic()
        self._next_health = time.monotonic() + HEALTH_INTERVAL_S
        self._health_frames: dict[str, int] = {}

    # -- set-up on the first frames -----------------------------------------------------------------
    def _config(self, names: Sequence[str]) -> AppConfig:
        lines = self.settings.lines()
        rois = self.settings.rois()
        streams = []
        for i, name in enumerate(names):
            roi = rois.get(name)
            try:
                streams.append(StreamConfig(name=name, uri=f"panorama:{name}",
                                            line=lines[i] if i < len(lines) else name, roi=roi,
                                            counter=self.settings.counter()))
            except ValidationError as exc:
                raise EdgeAppError(format_validation_error(f"graph parameters for camera {name}", exc)) from None
        return AppConfig(site=self.settings.site_id, state_dir=self.storage_dir, model={"path": "model_node"},
                         streams=streams, mqtt=self.settings.mqtt())

    def ensure_streams(self, names: Sequence[str]) -> None:
        """Create the publisher and one `StreamProcessor` per stream; restores saved counter states."""
        new = [n for n in names if n not in self.processors]
        if not new:
            return
        from edge_app.counter import BinCounter
        from edge_app.publish import EventPublisher
        from edge_app.roi import Roi
        from edge_app.stream_processor import StreamProcessor

        all_names = list(self.processors) + new
        cfg = self._config(all_names)
        if self.publisher is not None:  # a camera was added while running: reopen with all streams
            self.publisher.stop(2.0)
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self.publisher = EventPublisher(cfg)
        saved = self.publisher.restore_counter_states()
        self.publisher.start()
        for stream in cfg.streams:
            if stream.name in self.processors:
                self.processors[stream.name].publisher = self.publisher
                continue
            state = saved.get(stream.name)
            counter = (BinCounter.restore(stream.name, stream.line_id, stream.counter, state) if state
                       else BinCounter(stream.name, stream.line_id, stream.counter))
            if state:
                log.info("stream %s: resumed counting: global %d, bin %d", stream.name, counter.global_count,
                         counter.bin_id)
            self.processors[stream.name] = StreamProcessor(
                stream.name, counter, Roi.from_config(stream), self.publisher,
                score_threshold=self.settings.score_threshold)
            self.frames[stream.name] = 0
        log.info("counting %d camera stream(s): %s (MQTT %s)", len(all_names), ", ".join(all_names),
                 self.settings.mqtt_endpoint or "off: counts kept in storage")

    # -- per frame ----------------------------------------------------------------------------------
    def model_input(self, image: np.ndarray) -> np.ndarray:
        """``(1, 3, S, S)`` float32 for the model node's ``data`` input."""
        return self.preprocess([image])

    def on_frame(self, stream_id: object, image: np.ndarray, time_stamp: object,
                 model_outputs: Sequence[np.ndarray]) -> Overlay:
        """Decode, count and publish one frame; returns what to draw on the HDMI output."""
        from edge_app.detectors.decode import decode_batch
        from edge_app.frame import Frame

        name = stream_name(stream_id)
        self.ensure_streams([name])
        outputs = [np.asarray(o) for o in model_outputs]
        if len(outputs) != 3:
            raise EdgeAppError(f"model node: expected the 3 GluonCV outputs (class ids, scores, boxes), got "
                               f"{len(outputs)}")
        height, width = image.shape[:2]
        detections = decode_batch(outputs[0], outputs[1], outputs[2], [(height, width)], self.input_size,
                                  self.settings.score_threshold, CLASS_NAMES)[0]
        index = self.frames[name]
        self.frames[name] = index + 1
        t = timestamp_seconds(time_stamp, time.time())
        processor = self.processors[name]
        processor(Frame(name, index, t, image), detections)
        counted = processor.roi.filter(detections.above(self.settings.score_threshold))
        overlay = Overlay()
        scale = np.array([width, height, width, height], np.float32)
        for box in counted.boxes:
            x1, y1, x2, y2 = (float(v) for v in np.clip(box / scale, 0.0, 1.0))
            overlay.rects.append((x1, y1, x2, y2))
        counter = processor.counter
        overlay.labels.append((f"{counter.line}: bin {counter.bin_id} trays {counter.local} | total "
                               f"{counter.global_count} | bins {len(counter.bins)}", 0.02, 0.05))
        self._maybe_health()
        return overlay

    def _maybe_health(self) -> None:
        now = time.monotonic()
        if now < self._next_health or self.publisher is None:
            return
        elapsed = HEALTH_INTERVAL_S + (now - self._next_health)
        streams = {name: {"fps": round((self.frames[name] - self._health_frames.get(name, 0)) / elapsed, 2),
                          "frames": self.frames[name]} for name in self.processors}
        self._health_frames = dict(self.frames)
        self._next_health = now + HEALTH_INTERVAL_S
        self.publisher.publish_health({"uptime_s": round(now - self._started, 1), "runtime": "panorama",
                                       "streams": streams})

    # -- end ---------------------------------------------------------------------------------------
    def close(self, *, ended: bool) -> None:
        """``ended``: the cameras ended (local files): close each last bin; else save states mid-bin."""
        for name, processor in self.processors.items():
            try:
                processor.finish() if ended else processor.save_state()
            except Exception:  # noqa: BLE001 - one stream's failure must not lose the others' states
                log.exception("stream %s: saving the counter state failed", name)
        if self.publisher is not None:
            self.publisher.stop(5.0)
            self.publisher = None

    def summary(self) -> dict[str, dict]:
        return {name: {"frames": self.frames[name], "bins": p.counter.bins, "global": p.counter.global_count,
                       "line": p.counter.line} for name, p in self.processors.items()}

"""The app's configuration: one YAML file, validated by pydantic at start-up.

Every model forbids unknown keys, so a typo (``treshold``) is an error, not a silently ignored
setting. :func:`load_config` turns any problem into one :class:`EdgeAppError` line that names the
file, the key path and what was expected, e.g.::

    error: configs/demo.yaml: streams.0.counter.window: Input should be a valid integer (got 'ten')
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edge_app.errors import EdgeAppError


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class CounterParams(StrictModel):
    """Parameters of `BinCounter` (see its docstring for what each one does)."""

    window: Annotated[int, Field(ge=2, le=600)] = 8
    """n: frames over which a continuous drop of the tray count declares a new bin."""
    min_drop: Annotated[int, Field(ge=1)] = 2
    """How many trays the smoothed count must fall over ``window`` to count as 'dropping'."""
    smoothing: Annotated[int, Field(ge=1, le=301)] = 25
    """Frames in the running quantile that removes flicker, missed trays and short false positives."""
    zero_frames: Annotated[int, Field(ge=1)] = 5
    """Consecutive frames with a smoothed count of zero that start a drop (completed after ``confirm_s``)."""
    min_bin_frames: Annotated[int, Field(ge=0)] = 0
    """Frames a bin must have lasted before it may complete (guards against instant re-triggers)."""
    quantile: Annotated[float, Field(ge=0.0, le=1.0)] = 0.75
    """Which running quantile of the last ``smoothing`` raw counts is the smoothed count (0.5: the median;
    above 0.5 favours the frames where every tray was detected, see `BinCounter`)."""
    drop_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    """A drop only counts when the smoothed count falls to ``local - max(min_drop, drop_fraction * local)``
    or below (hysteresis: partial occlusions and missed trays never get there)."""
    confirm_s: Annotated[float, Field(ge=0.0)] = 5.0
    """Seconds the count must stay down, without recovering, before the bin is declared complete; longer
    than the longest hand occlusion (a hand that leaves lets the count recover and cancels the drop)."""
    final_window_s: Annotated[float, Field(ge=0.0)] = 2.0
    """A bin's count must still be seen this close to the swap (0: plain max of the smoothed count)."""
    min_support: Annotated[int, Field(ge=1)] = 5
    """Raw frames of a bin that must show a tray count for it to be the bin's count."""
    min_support_s: Annotated[float, Field(ge=0.0)] = 0.5
    """Seconds of raw frames (frame count times frame interval) that must show a tray count for it to be
    the bin's count (``min_support`` is the same in frames; both must hold)."""
    min_span_s: Annotated[float, Field(ge=0.0)] = 1.0
    """Seconds from the first to the last raw frame of a bin showing a tray count for it to be the bin's
    count: a real tray stays until the swap, most false positives are bursts shorter than that."""
    count_interval_s: Annotated[float, Field(gt=0)] = 1.0
    """How often a `count` event is emitted, in seconds of stream time."""


class StreamConfig(StrictModel):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    uri: str
    """A video file path, ``rtsp://...``, ``http://...``, or ``usb:N`` / ``N`` for a local camera."""
    line: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")] | None = None
    """Packaging-line id used in MQTT topics and SiteWise aliases (defaults to ``name``)."""
    roi: list[tuple[float, float]] | None = None
    """Polygon in frame pixels; only detections whose centre lies inside are counted."""
    mask_outside_roi: bool = False
    """Also black out everything outside the ROI before inference."""
    counter: CounterParams = CounterParams()
    loop: bool = False
    """Loop a file source forever (demos)."""

    @field_validator("roi")
    @classmethod
    def _roi_is_polygon(cls, roi: list[tuple[float, float]] | None) -> list[tuple[float, float]] | None:
        if roi is not None and len(roi) < 3:
            raise ValueError(f"a polygon needs at least 3 points, got {len(roi)}")
        return roi

    @property
    def line_id(self) -> str:
        return self.line or self.name


class ModelConfig(StrictModel):
    path: Path
    backend: Literal["onnxruntime", "tensorrt"] = "onnxruntime"
    input_size: tuple[Annotated[int, Field(ge=32)], Annotated[int, Field(ge=32)]] = (300, 300)
    """Network input as (width, height)."""
    score_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    class_names: list[str] = ["tray"]
    count_classes: list[str] | None = None
    """Classes the counter counts (default: all)."""
    batch_size: Annotated[int, Field(ge=1, le=64)] = 1
    """Largest batch the detector is given (dynamic batching across streams)."""
    resize: Literal["linear", "gluoncv"] = "linear"
    """Frame -> network input resize: ``linear`` (bilinear; ~1.1 ms less CPU per 640x480 frame than the area
    filter, same mAP on the unseen line: see README, Performance) or ``gluoncv`` (bit-exact with GluonCV's
    evaluation transform: area filter when shrinking)."""


class TlsConfig(StrictModel):
    ca_certs: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    insecure: bool = False
    """Skip hostname verification (never in production)."""


class MqttConfig(StrictModel):
    enabled: bool = True
    host: str = "localhost"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    tls: TlsConfig | None = None
    topic_prefix: Annotated[str, Field(min_length=1)] = "edge-app"
    client_id: str = "edge-app"
    qos: Literal[0, 1] = 1
    keepalive: Annotated[int, Field(ge=5)] = 30
    username: str | None = None
    password: str | None = None

    @field_validator("topic_prefix")
    @classmethod
    def _no_wildcards(cls, prefix: str) -> str:
        if any(c in prefix for c in "#+") or prefix.endswith("/"):
            raise ValueError("must not contain '#' or '+' or end with '/'")
        return prefix


class OutboxConfig(StrictModel):
    """Durable store-and-forward queue (``edge_app/publish/outbox.py``); see README 'Delivery guarantees'."""

    max_mb: Annotated[float, Field(gt=0)] = 256.0
    """Cap on queued payload bytes; when reached the oldest droppable telemetry goes first, bins never."""
    synchronous: Literal["normal", "full"] = "normal"
    """SQLite ``synchronous`` in WAL mode: ``normal`` survives an app crash/kill -9, ``full`` also power loss."""
    inflight: Annotated[int, Field(ge=1, le=10000)] = 200
    """Messages sent but not yet acknowledged by the broker (bounded window)."""
    on_corrupt: Literal["quarantine", "fail"] = "quarantine"
    """Corrupt DB at start-up: move it aside, salvage what is readable, start fresh with an alarm; or stop."""


class IotCoreConfig(StrictModel):
    """AWS IoT Core over mTLS via awsiotsdk; when enabled it replaces the plain MQTT connection."""

    enabled: bool = True
    endpoint: Annotated[str, Field(min_length=1)]
    """``xxxxxxxx-ats.iot.<region>.amazonaws.com`` (or a local test broker's host name)."""
    port: Annotated[int, Field(ge=1, le=65535)] = 8883
    cert: Path
    key: Path
    root_ca: Path | None = None
    """Amazon Root CA 1 PEM; None uses the system trust store."""
    client_id: Annotated[str, Field(min_length=1)]
    keepalive: Annotated[int, Field(ge=30, le=1200)] = 60


class SiteWiseConfig(StrictModel):
    """How measurements map to SiteWise property aliases (``edge_app/sitewise``)."""

    alias_template: str = "/{site}/{line}/{measurement}"
    """Python format string with ``{site}``, ``{line}``, ``{measurement}``."""
    region: str | None = None
    """Region for direct ingestion (``batch_put_asset_property_value``)."""

    @field_validator("alias_template")
    @classmethod
    def _has_placeholders(cls, template: str) -> str:
        missing = [k for k in ("{line}", "{measurement}") if k not in template]
        if missing:
            raise ValueError(f"must contain {' and '.join(missing)}")
        return template


class PipelineConfig(StrictModel):
    """Multi-stream pipeline tuning (``edge_app/pipeline``); the batch size is ``model.batch_size``."""

    max_wait_ms: Annotated[float, Field(ge=0.0, le=1000.0)] = 10.0
    """Longest a frame waits for others to fill a batch (latency bound under light load)."""
    queue_size: Annotated[int, Field(ge=1, le=256)] = 4
    """Frames buffered per stream before inference; a live stream drops the oldest beyond this."""
    health_interval_s: Annotated[float, Field(gt=0.0)] = 30.0
    """Seconds between health heartbeats (fps, drops, latency, model version)."""
    inference_threads: Annotated[int, Field(ge=1, le=256)] | None = None
    """ONNX Runtime intra-op threads; default: available cores - 1, leaving one for decoding and counting."""
    ort_optimization: Literal["basic", "all"] = "all"
    """ONNX Runtime graph optimisation; ``all`` repairs the exported graph first (same outputs, faster)."""
    background_nice: Annotated[int, Field(ge=0, le=19)] = 5
    """Nice levels the decode and post-processing threads run below inference (0: same priority), so the
    detector, the bottleneck, is never preempted by them."""
    pin_threads: bool = False
    """Linux, ONNX Runtime: pin inference to the first ``inference_threads`` cores and the decode and
    post-processing threads to the others (`pipeline.cpu.CorePlan`). Off by default: on the 2-core development
    machine it made no difference beyond noise (README, Performance), and on a machine shared with other work
    it stops the scheduler from moving the detector to a free core."""
    stack_ahead: bool = True
    """Copy each batch's prepared frames into one array on a background thread, one batch ahead of the detector,
    instead of on the inference thread between two detector calls (`pipeline.stacking`). False: the old way."""


class OutputConfig(StrictModel):
    annotated_video_dir: Path | None = None
    """Write one annotated .mp4 per stream here (boxes, ROI, local and global counts)."""
    record_detections: Path | None = None
    """Write every frame's detections as replay JSONL (see README, 'Detections replay')."""


class DashboardConfig(StrictModel):
    """Local web dashboard (``edge_app/dashboard``); ``edge-app run --dashboard PORT`` overrides these."""

    port: Annotated[int, Field(ge=0, le=65535)] | None = None
    """Serve the dashboard on this port (absent: no dashboard unless ``--dashboard`` is given)."""
    host: str = "127.0.0.1"
    """Interface to bind; anything but loopback requires ``token``."""
    token: Annotated[str, Field(min_length=8)] | None = None
    """Shared secret: ``Authorization: Bearer <token>``, or open ``/?token=<token>`` once (sets a cookie)."""
    frame_fps: Annotated[float, Field(gt=0.0, le=30.0)] = 4.0
    """Most annotated frames per second drawn per stream for viewers (none are drawn when nobody watches)."""


class InspectionConfig(StrictModel):
    """One visual anomaly inspection of a region of a stream (``edge_app/anomaly/inspector.py``)."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    stream: str
    """Name of a stream in ``streams`` whose frames are inspected."""
    line: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")] | None = None
    """Line id for the ``<prefix>/<line>/anomaly`` topic (defaults to the stream's line)."""
    model_dir: Path
    """Model directory written by ``edge-app anomaly train``."""
    roi: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)], Annotated[int, Field(ge=8)],
               Annotated[int, Field(ge=8)]] | None = None
    """x, y, w, h in frame pixels cut out before the model (absent: the model's own ROI on the whole frame)."""
    every_n_frames: Annotated[int, Field(ge=1)] | None = 30
    """Inspect every n-th frame of the stream (absent: only when triggered)."""
    trigger_topic: str | None = None
    """MQTT topic; a message on it makes the next frame of the stream be inspected."""
    snapshot_dir: Path | None = None
    """Where snapshots with overlays go (default ``<state_dir>/anomaly/<name>``)."""
    save_snapshots: Literal["anomalous", "all", "none"] = "anomalous"

    @model_validator(mode="after")
    def _has_a_trigger(self) -> InspectionConfig:
        if self.every_n_frames is None and self.trigger_topic is None:
            raise ValueError("set every_n_frames or trigger_topic (or both)")
        return self


class AppConfig(StrictModel):
    site: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")] = "site-1"
    state_dir: Path = Path("state")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    model: ModelConfig
    streams: Annotated[list[StreamConfig], Field(min_length=1)]
    mqtt: MqttConfig = MqttConfig()
    output: OutputConfig = OutputConfig()
    pipeline: PipelineConfig = PipelineConfig()
    outbox: OutboxConfig = OutboxConfig()
    iot_core: IotCoreConfig | None = None
    sitewise: SiteWiseConfig = SiteWiseConfig()
    dashboard: DashboardConfig = DashboardConfig()
    inspections: list[InspectionConfig] = []
    """Visual anomaly inspections (README, 'Visual anomaly inspection')."""

    @model_validator(mode="after")
    def _unique_stream_names(self) -> AppConfig:
        names = [s.name for s in self.streams]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"stream names must be unique, repeated: {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _inspections_name_streams(self) -> AppConfig:
        streams = [s.name for s in self.streams]
        for i, inspection in enumerate(self.inspections):
            if inspection.stream not in streams:
                raise ValueError(f"inspections.{i}.stream: unknown stream {inspection.stream!r} "
                                 f"(streams: {', '.join(streams)})")
        names = [i.name for i in self.inspections]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"inspection names must be unique, repeated: {', '.join(dupes)}")
        return self

    def resolve_paths(self, base: Path) -> AppConfig:
        """Make relative paths relative to the config file's folder, so configs are portable."""

        def fix(p: Path | None) -> Path | None:
            return p if p is None or p.is_absolute() else (base / p)

        self.state_dir = fix(self.state_dir)  # type: ignore[assignment]
        self.model.path = fix(self.model.path)  # type: ignore[assignment]
        self.output.annotated_video_dir = fix(self.output.annotated_video_dir)
        self.output.record_detections = fix(self.output.record_detections)
        for inspection in self.inspections:
            inspection.model_dir = fix(inspection.model_dir)  # type: ignore[assignment]
            inspection.snapshot_dir = fix(inspection.snapshot_dir) or self.state_dir / "anomaly" / inspection.name
        for stream in self.streams:
            if "://" not in stream.uri and not _is_device(stream.uri):
                stream.uri = str(fix(Path(stream.uri)))
        if self.iot_core:
            for key in ("cert", "key", "root_ca"):
                setattr(self.iot_core, key, fix(getattr(self.iot_core, key)))
        if self.mqtt.tls:
            for key in ("ca_certs", "certfile", "keyfile"):
                setattr(self.mqtt.tls, key, fix(getattr(self.mqtt.tls, key)))
        return self


def _is_device(uri: str) -> bool:
    return uri.isdigit() or uri.startswith("usb:")


def format_validation_error(source: str, err: ValidationError) -> str:
    """First pydantic error as ``source: key.path: message (got value)``."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    got = first.get("input")
    got_text = "" if first["type"] in ("missing", "extra_forbidden") else f" (got {got!r:.60})"
    more = len(err.errors()) - 1
    suffix = f" [+{more} more error{'s' if more > 1 else ''}]" if more else ""
    return f"{source}: {loc}: {msg}{got_text}{suffix}"


def load_config(path: str | Path, *, resolve: bool = True) -> AppConfig:
    """Read and validate a YAML config; raise `EdgeAppError` with one precise line on any problem."""
    path = Path(path)
    if not path.is_file():
        raise EdgeAppError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise EdgeAppError(f"{path}:{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, dict):
        raise EdgeAppError(f"{path}: expected a mapping of settings at the top level, got {type(raw).__name__}")
    try:
        config = AppConfig.model_validate(raw)
    except ValidationError as exc:
        raise EdgeAppError(format_validation_error(str(path), exc)) from None
    return config.resolve_paths(path.parent.resolve()) if resolve else config

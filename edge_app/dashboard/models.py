"""Response and request bodies of the dashboard's JSON API.

Why pydantic models rather than plain dicts: FastAPI turns them into the OpenAPI document
(``/openapi.json``), so a plant integrator can generate a client or read the schema instead of guessing
from sample payloads; and a field the page relies on cannot silently disappear.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class StreamCounts(BaseModel):
    """One camera's counter as last reported by its `CountUpdate` / `BinCompleted` events."""

    stream: str
    line: str
    local: int = 0
    """Trays in the bin being filled."""
    global_count: int = 0
    """Trays in all completed bins."""
    bins_completed: int = 0
    bin_id: int = 1
    visible: int = 0
    """Trays the counter saw in the latest frame."""
    trays_per_hour: float | None = None
    """Rate over the last hour of wall time (shorter at start-up; null during the first 10 s)."""
    fps: float | None = None
    frame_url: str
    mjpeg_url: str
    has_frame: bool = False
    updated_at: float | None = None
    """UNIX time of the last event that changed these counts."""


class LineStatus(BaseModel):
    """A packaging line: the sum over its cameras (usually exactly one)."""

    line: str
    local: int
    global_count: int
    bins_completed: int
    trays_per_hour: float | None
    streams: list[StreamCounts]


class HistoryPoint(BaseModel):
    t: float
    """UNIX time."""
    total: int
    """Trays counted so far on this line: completed bins plus the bin being filled."""
    global_count: int


class LineDetail(LineStatus):
    history: list[HistoryPoint]
    """Counts over the requested window (``minutes``), oldest first, at most ``MAX_POINTS`` points."""


class BinEvent(BaseModel):
    id: int
    """Dashboard-local sequence number (use it for the snapshot URL)."""
    stream: str
    line: str
    bin_id: int
    trays: int
    start_t: float
    end_t: float
    global_count: int
    wall_time: float
    snapshot_url: str | None
    """The fullest frame of that bin with its counted boxes, when a frame was seen."""


class AnomalyEvent(BaseModel):
    id: int
    stream: str
    line: str
    t: float
    score: float
    is_anomalous: bool
    area_percent: float
    wall_time: float
    snapshot_url: str | None


class Percentiles(BaseModel):
    p50: float | None = None
    p95: float | None = None


class StreamHealth(BaseModel):
    model_config = ConfigDict(extra="ignore")

    fps: float = 0.0
    frames: int = 0
    dropped_frames: int = 0
    latency_ms: Percentiles = Percentiles()
    connected: bool | None = None
    reconnects: int | None = None


class OutboxHealth(BaseModel):
    model_config = ConfigDict(extra="ignore")

    depth: int = 0
    bytes: int = 0
    max_bytes: int | None = None
    dropped_total: int = 0
    oldest_age_s: float = 0.0


class BrokerHealth(BaseModel):
    model_config = ConfigDict(extra="ignore")

    transport: str | None = None
    connected: bool = False
    host: str | None = None
    port: int | None = None


class Health(BaseModel):
    """What the MQTT heartbeat carries, read directly from the running app (not from the broker)."""

    uptime_s: float | None = None
    model_version: str = "unknown"
    streams: dict[str, StreamHealth] = {}
    inference_latency_ms: Percentiles = Percentiles()
    mean_batch_size: float | None = None
    outbox: OutboxHealth | None = None
    broker: BrokerHealth | None = None
    disk_full: bool = False


class RoiBody(BaseModel):
    """``PUT /api/roi/{stream}``: the new polygon in frame pixels (``[[x, y], ...]``, at least 3 points)."""

    model_config = ConfigDict(extra="forbid")

    points: list[tuple[float, float]]


class RoiStatus(BaseModel):
    stream: str
    line: str
    points: list[tuple[float, float]] | None
    """The polygon in the config file (null: the whole frame counts)."""
    live_points: list[tuple[float, float]] | None
    """The polygon the running counter uses now."""
    frame_width: int | None
    frame_height: int | None
    frame_url: str
    """A frozen, unannotated frame to draw on."""


class RoiSaved(RoiStatus):
    backup: str
    """Where the previous config was copied (``<config>.bak-<UTC timestamp>``)."""
    applied_live: bool
    message: str


class ErrorBody(BaseModel):
    detail: Annotated[str, Field(description="What was wrong, in one line")]

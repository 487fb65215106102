"""MQTT topics and JSON payloads built from `edge_app.events` (and health/alarms).

Every payload carries ``schema_version`` (consumers can reject what they do not understand), an ``id``
(stable: generated once and stored with the message in the outbox, so every re-send after an outage or
a crash carries the same id and consumers de-duplicate on it), an ISO-8601 UTC ``timestamp`` and,
where a SiteWise measurement exists, ``sitewise.<measurement>`` = a TQV with its property alias.

Bin ids are deterministic: ``<site>/<stream>/bin/<epoch>/<bin_id>``. ``epoch`` names the lineage of
the counter state (it is created together with the state DB), so a bin re-produced from the same
state gets the same id, while a counter restarted from scratch after its state was lost can never be
mistaken for a duplicate of an old bin with the same number.

Priorities drive what the bounded outbox drops first when full: health/telemetry, then counts, then
anomalies and alarms; bins (`NEVER_DROP`) are never dropped.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from edge_app.events import AnomalyResult, BinCompleted, CountUpdate, Event
from edge_app.sitewise.measurements import (
    ANOMALY_SCORE,
    BINS_COMPLETED,
    DEFAULT_ALIAS_TEMPLATE,
    FPS,
    TRAYS_IN_BIN,
    TRAYS_TOTAL,
    Measurement,
    aliased_tqv,
    property_alias,
)

SCHEMA_VERSION = 1

TELEMETRY = 0
COUNT = 1
IMPORTANT = 2
NEVER_DROP = 3


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    id: str
    topic: str
    payload: bytes
    priority: int
    kind: str
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str

    def count(self, line: str) -> str:
        return f"{self.prefix}/{line}/count"

    def bin(self, line: str) -> str:
        return f"{self.prefix}/{line}/bin"

    def anomaly(self, line: str) -> str:
        return f"{self.prefix}/{line}/anomaly"

    def telemetry(self, line: str) -> str:
        return f"{self.prefix}/{line}/telemetry"

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def health(self) -> str:
        return f"{self.prefix}/health"

    @property
    def alarm(self) -> str:
        return f"{self.prefix}/alarm"


def iso_utc(unix_time: float) -> str:
    """``2026-11-23T13:20:00.123Z``: ISO-8601, UTC, millisecond precision (truncated, like ``isoformat``)."""
    whole_ms = int(unix_time * 1000)
    seconds, ms = divmod(whole_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"


_RUN_ID = uuid.uuid4().hex[:12]
_serial = itertools.count(1)


def unique_suffix() -> str:
    """``<random run id>-<serial>``: unique across restarts without a uuid4 (an ``os.urandom`` call) per message."""
    return f"{_RUN_ID}-{next(_serial)}"


def encode(payload: Mapping) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=False).encode("utf-8")


@dataclass(frozen=True, slots=True)
class MessageBuilder:
    """Turns events into `OutboundMessage` for one site; pure (no I/O), so it is trivial to test."""

    site: str
    prefix: str
    epoch: str = "0"
    alias_template: str = DEFAULT_ALIAS_TEMPLATE

    @property
    def topics(self) -> Topics:
        return Topics(self.prefix)

    def _sw(self, line: str, m: Measurement, value: float, wall_time: float, quality: str = "GOOD") -> dict:
        alias = property_alias(self.site, line, m.name, self.alias_template)
        return aliased_tqv(alias, m, value, wall_time, quality)  # type: ignore[arg-type]

    def _base(self, kind: str, msg_id: str, wall_time: float, **fields: object) -> dict:
        return {"schema_version": SCHEMA_VERSION, "id": msg_id, "type": kind, "site": self.site,
                "timestamp": iso_utc(wall_time), **fields}

    def bin_id(self, stream: str, bin_id: int) -> str:
        return f"{self.site}/{stream}/bin/{self.epoch}/{bin_id}"

    def for_event(self, event: Event) -> OutboundMessage:
        if isinstance(event, BinCompleted):
            return self._bin(event)
        if isinstance(event, CountUpdate):
            return self._count(event)
        if isinstance(event, AnomalyResult):
            return self._anomaly(event)
        raise TypeError(f"not an event: {type(event).__name__}")

    def _bin(self, e: BinCompleted) -> OutboundMessage:
        msg_id = self.bin_id(e.stream, e.bin_id)
        # bin ids are 1-based and increment per completed bin, so completing bin N means N bins completed
        payload = self._base(
            "bin", msg_id, e.wall_time, line=e.line, stream=e.stream, bin_id=e.bin_id, trays=e.trays,
            start_t=e.start_t, end_t=e.end_t, **{"global": e.global_count}, bins_completed=e.bin_id,
            sitewise={"trays_total": self._sw(e.line, TRAYS_TOTAL, e.global_count, e.wall_time),
                      "bins_completed": self._sw(e.line, BINS_COMPLETED, e.bin_id, e.wall_time)},
        )
        return OutboundMessage(msg_id, self.topics.bin(e.line), encode(payload), NEVER_DROP, "bin")

    def _count(self, e: CountUpdate) -> OutboundMessage:
        msg_id = f"{self.site}/{e.stream}/count/{unique_suffix()}"
        payload = self._base(
            "count", msg_id, e.wall_time, line=e.line, stream=e.stream, t=e.t, bin_id=e.bin_id, local=e.local,
            **{"global": e.global_count}, bins_completed=e.bins_completed, visible=e.visible,
            sitewise={"trays_in_bin": self._sw(e.line, TRAYS_IN_BIN, e.local, e.wall_time),
                      "trays_total": self._sw(e.line, TRAYS_TOTAL, e.global_count, e.wall_time),
                      "bins_completed": self._sw(e.line, BINS_COMPLETED, e.bins_completed, e.wall_time)},
        )
        return OutboundMessage(msg_id, self.topics.count(e.line), encode(payload), COUNT, "count")

    def _anomaly(self, e: AnomalyResult) -> OutboundMessage:
        msg_id = f"{self.site}/{e.stream}/anomaly/{unique_suffix()}"
        payload = self._base(
            "anomaly", msg_id, e.wall_time, line=e.line, stream=e.stream, t=e.t, score=e.score,
            is_anomalous=e.is_anomalous, area_percent=e.area_percent, snapshot_path=e.snapshot_path,
            sitewise={"anomaly_score": self._sw(e.line, ANOMALY_SCORE, e.score, e.wall_time)},
        )
        priority = IMPORTANT if e.is_anomalous else COUNT
        return OutboundMessage(msg_id, self.topics.anomaly(e.line), encode(payload), priority, "anomaly")

    def health(self, health: Mapping, wall_time: float) -> OutboundMessage:
        """The app heartbeat as given (plus id/timestamp); see `EventPublisher.publish_health`."""
        msg_id = f"{self.site}/health/{unique_suffix()}"
        payload = self._base("health", msg_id, wall_time, **dict(health))
        return OutboundMessage(msg_id, self.topics.health, encode(payload), TELEMETRY, "health")

    def telemetry(self, line: str, stream: str, stats: Mapping, wall_time: float) -> OutboundMessage:
        """Per-line fps as a SiteWise measurement; BAD quality when the stream delivers no frames."""
        fps = float(stats.get("fps", 0.0))
        quality = "GOOD" if fps > 0 else "BAD"
        msg_id = f"{self.site}/{stream}/telemetry/{unique_suffix()}"
        payload = self._base(
            "telemetry", msg_id, wall_time, line=line, stream=stream, fps=fps,
            dropped_frames=int(stats.get("dropped_frames", 0)),
            sitewise={"fps": self._sw(line, FPS, fps, wall_time, quality)},
        )
        return OutboundMessage(msg_id, self.topics.telemetry(line), encode(payload), TELEMETRY, "telemetry")

    def alarm(self, code: str, message: str, wall_time: float, **details: object) -> OutboundMessage:
        msg_id = f"{self.site}/alarm/{code}/{unique_suffix()}"
        payload = self._base("alarm", msg_id, wall_time, code=code, message=message, **details)
        return OutboundMessage(msg_id, self.topics.alarm, encode(payload), IMPORTANT, "alarm")

    def status(self, state: str, client_id: str, wall_time: float) -> bytes:
        """Retained ``<prefix>/status`` payload: ``online`` on connect, ``offline`` as last will/at stop."""
        return encode({"schema_version": SCHEMA_VERSION, "type": "status", "state": state, "site": self.site,
                       "client_id": client_id, "timestamp": iso_utc(wall_time)})

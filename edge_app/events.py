"""Events produced by the counter (and the inspector) and consumed by publishers.

Times: ``t`` is stream time in seconds (media time for files, UNIX time for live sources);
``wall_time`` is the UNIX time at which the event was produced (what MQTT payloads timestamp).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True, slots=True)
class CountUpdate:
    """Periodic snapshot of one line's counters (topic ``<prefix>/<line>/count``)."""

    stream: str
    line: str
    t: float
    local: int
    """Trays in the bin being filled (the max seen in it so far)."""
    global_count: int
    """Trays in all completed bins."""
    bins_completed: int
    bin_id: int
    """Id of the bin being filled (1-based, increments per completed bin, survives restarts)."""
    visible: int = 0
    """Trays detected (after smoothing) in the latest frame."""
    wall_time: float = field(default_factory=time.time)

    kind = "count"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class BinCompleted:
    """A bin was declared full (topic ``<prefix>/<line>/bin``). ``bin_id`` is idempotent per stream."""

    stream: str
    line: str
    bin_id: int
    trays: int
    start_t: float
    end_t: float
    global_count: int
    """Global count after adding this bin."""
    wall_time: float = field(default_factory=time.time)

    kind = "bin_completed"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AnomalyResult:
    """Result of inspecting one region of interest (topic ``<prefix>/<line>/anomaly``)."""

    stream: str
    line: str
    t: float
    score: float
    """Normalized so that the decision threshold is 0.5."""
    is_anomalous: bool
    area_percent: float
    snapshot_path: str | None = None
    wall_time: float = field(default_factory=time.time)

    kind = "anomaly"

    def to_dict(self) -> dict:
        return asdict(self)


Event = CountUpdate | BinCompleted | AnomalyResult

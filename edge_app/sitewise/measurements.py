"""The measurements the app reports to AWS IoT SiteWise, their property aliases and TQVs.

SiteWise identifies a time series by a *property alias* (a free string). Building it from the
config's site and line names (``/<site>/<line>/<measurement>`` by default) lets the same alias be
used by the MQTT payloads, the IoT rule and the asset models without any lookup table.

A TQV is SiteWise's (timestamp, quality, value) triple. The timestamp is split into whole seconds
and nanoseconds because that is what ``BatchPutAssetPropertyValue`` takes; splitting with
``divmod`` on integer nanoseconds avoids the float rounding that ``int(t) , (t % 1) * 1e9`` has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Quality = Literal["GOOD", "BAD", "UNCERTAIN"]
DataType = Literal["INTEGER", "DOUBLE"]


@dataclass(frozen=True, slots=True)
class Measurement:
    name: str
    data_type: DataType
    unit: str
    description: str

    @property
    def value_key(self) -> str:
        """Key of the SiteWise variant for this type: ``integerValue`` or ``doubleValue``."""
        return "integerValue" if self.data_type == "INTEGER" else "doubleValue"


TRAYS_IN_BIN = Measurement("trays_in_bin", "INTEGER", "trays", "Trays in the bin being filled")
TRAYS_TOTAL = Measurement("trays_total", "INTEGER", "trays", "Trays in all completed bins (global count)")
BINS_COMPLETED = Measurement("bins_completed", "INTEGER", "bins", "Bins completed")
FPS = Measurement("fps", "DOUBLE", "frames/s", "Frames processed per second")
ANOMALY_SCORE = Measurement("anomaly_score", "DOUBLE", "score", "Visual anomaly score (0.5 = threshold)")

MEASUREMENTS: tuple[Measurement, ...] = (TRAYS_IN_BIN, TRAYS_TOTAL, BINS_COMPLETED, FPS, ANOMALY_SCORE)
BY_NAME = {m.name: m for m in MEASUREMENTS}

DEFAULT_ALIAS_TEMPLATE = "/{site}/{line}/{measurement}"


def property_alias(site: str, line: str, measurement: str, template: str = DEFAULT_ALIAS_TEMPLATE) -> str:
    return template.format(site=site, line=line, measurement=measurement)


def split_timestamp(wall_time: float) -> dict[str, int]:
    """UNIX seconds (float) -> ``{"timeInSeconds": s, "offsetInNanos": ns}`` with 0 <= ns < 1e9."""
    total_ns = round(wall_time * 1_000_000) * 1000  # microsecond precision is all a float carries here
    seconds, nanos = divmod(total_ns, 1_000_000_000)
    return {"timeInSeconds": int(seconds), "offsetInNanos": int(nanos)}


def tqv(measurement: Measurement, value: float, wall_time: float, quality: Quality = "GOOD") -> dict:
    """One SiteWise property value: ``{"timestamp": ..., "quality": ..., "value": {"integerValue": n}}``.

    A non-finite double (NaN/inf) cannot be sent to SiteWise; it is reported as quality BAD with 0.0.
    """
    if measurement.data_type == "INTEGER":
        typed: int | float = int(value)
    else:
        typed = float(value)
        if not math.isfinite(typed):
            typed, quality = 0.0, "BAD"
    return {"timestamp": split_timestamp(wall_time), "quality": quality, "value": {measurement.value_key: typed}}


def aliased_tqv(alias: str, measurement: Measurement, value: float, wall_time: float,
                quality: Quality = "GOOD") -> dict:
    """A TQV plus its ``propertyAlias``: what each MQTT payload carries under ``sitewise.<measurement>``.

    Flat (not wrapped in ``propertyValues``) so an IoT rule reaches every field with a plain
    substitution template such as ``${sitewise.trays_total.value.integerValue}``.
    """
    return {"propertyAlias": alias, **tqv(measurement, value, wall_time, quality)}


def to_entry(entry_id: str, aliased: dict) -> dict:
    """An aliased TQV -> one ``BatchPutAssetPropertyValue`` entry (direct ingestion)."""
    value = {k: aliased[k] for k in ("timestamp", "quality", "value")}
    return {"entryId": entry_id, "propertyAlias": aliased["propertyAlias"], "propertyValues": [value]}

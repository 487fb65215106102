"""Counts over time for the dashboard chart, and the trays-per-hour rate derived from them.

Why a coarse, bounded series: the chart covers at most a shift (8 h), and a point every couple of
seconds is finer than a screen can show over that span. Within ``sample_every_s`` the last point is
overwritten rather than appended, so the series always ends at the current count while memory stays
bounded (8 h / 2 s = 14 400 small tuples per camera) on a device that runs for months.

Trays per hour is the slope of the total (completed bins + the bin being filled) over the last hour
of wall time::

    rate = (total(now) - total(t0)) / (now - t0) * 3600,   t0 = the oldest point within the hour

It is undefined (None) until ``MIN_RATE_SPAN_S`` have been observed: the first seconds after a start
would extrapolate one tray into hundreds per hour.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

SHIFT_S = 8 * 3600.0
MIN_RATE_SPAN_S = 10.0
MAX_POINTS = 720


class CountHistory:
    """``(unix time, total, global)`` points of one stream, oldest first. Not thread-safe (the state locks)."""

    def __init__(self, keep_s: float = SHIFT_S, sample_every_s: float = 2.0) -> None:
        self.keep_s = keep_s
        self.sample_every_s = sample_every_s
        self.points: deque[tuple[float, int, int]] = deque()

    def add(self, t: float, total: int, global_count: int) -> None:
        if len(self.points) >= 2 and self.points[-1][0] - self.points[-2][0] < self.sample_every_s:
            self.points[-1] = (t, total, global_count)  # the last point moves on until it is a full step old
        else:
            self.points.append((t, total, global_count))
        while self.points and self.points[0][0] < t - self.keep_s:
            self.points.popleft()

    def since(self, t0: float) -> list[tuple[float, int, int]]:
        return [p for p in self.points if p[0] >= t0]

    def rate_per_hour(self, now: float, window_s: float = 3600.0) -> float | None:
        recent = self.since(now - window_s)
        if len(recent) < 2:
            return None
        (t0, total0, _), (t1, total1, _) = recent[0], recent[-1]
        if t1 - t0 < MIN_RATE_SPAN_S:
            return None
        return round((total1 - total0) / (t1 - t0) * 3600.0, 1)


def merge(series: Sequence[Sequence[tuple[float, int, int]]]) -> list[tuple[float, int, int]]:
    """Sum several cameras' series of one line: at each point in time, each camera's latest value."""
    if len(series) == 1:
        return list(series[0])
    events = sorted((p[0], i, p) for i, s in enumerate(series) for p in s)
    latest: dict[int, tuple[int, int]] = {}
    merged: list[tuple[float, int, int]] = []
    for t, i, (_, total, global_count) in events:
        latest[i] = (total, global_count)
        merged.append((t, sum(v[0] for v in latest.values()), sum(v[1] for v in latest.values())))
    return merged


def downsample(points: list[tuple[float, int, int]], max_points: int = MAX_POINTS) -> list[tuple[float, int, int]]:
    """Every k-th point so that at most ``max_points`` remain; the last (current) point is always kept."""
    if len(points) <= max_points:
        return points
    step = -(-len(points) // max_points)
    kept = points[::step]
    if kept[-1] is not points[-1]:
        kept[-1] = points[-1]
    return kept

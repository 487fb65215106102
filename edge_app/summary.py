"""End-of-run summary per stream, compared with the simulator's ground truth when it sits next to the video.

Why compare at all: the demo and every sim run then *measure* counting accuracy instead of asking the
reader to trust it. The truth file is looked up as ``<video stem>.truth.json`` (bundled demo assets),
``<video>.truth.json``, or ``truth.json`` in the video's folder (``edge-app sim generate --out DIR``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class StreamSummary:
    stream: str
    frames: int
    fps: float
    trays: int
    """Trays counted in this run (completed bins)."""
    bins: list[int]
    """Trays per bin completed in this run."""
    global_count: int
    """The line's global count, including what a restored state had already counted."""
    true_total: int | None = None
    true_bins: list[int] | None = None
    truth_file: str | None = None
    dropped: int = 0

    @property
    def error_percent(self) -> float | None:
        if self.true_total is None or self.true_total == 0:
            return None
        return round(100.0 * (self.trays - self.true_total) / self.true_total, 2)

    def to_json(self) -> dict:
        data = asdict(self)
        data["error_percent"] = self.error_percent
        return data


def find_truth(uri: str) -> Path | None:
    """The ground-truth JSON for a video file, if one exists (see module docstring)."""
    video = Path(uri)
    if "://" in uri or not video.is_file():
        return None
    for candidate in (video.with_suffix(".truth.json"), video.with_name(video.name + ".truth.json"),
                      video.with_name("truth.json")):
        if candidate.is_file():
            return candidate
    return None


def read_truth(path: Path) -> tuple[int, list[int]] | None:
    """``(total_trays, trays per bin)`` from a sim truth file; None (and a warning) if unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        bins = [int(b["trays"]) for b in data.get("bins", [])]
        total = int(data["total_trays"]) if "total_trays" in data else sum(bins)
        return total, bins
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: cannot read ground truth (%s)", path, exc)
        return None


def attach_truth(summary: StreamSummary, uri: str) -> StreamSummary:
    path = find_truth(uri)
    truth = read_truth(path) if path else None
    if path and truth:
        summary.truth_file = str(path)
        summary.true_total, summary.true_bins = truth
    return summary


def format_table(summaries: list[StreamSummary]) -> str:
    """A fixed-width table for the terminal (the JSON line after it is for machines)."""
    header = f"{'stream':<14}{'frames':>8}{'fps':>8}{'bins':>6}{'counted':>9}{'true':>7}{'error':>9}{'global':>8}"
    lines = [header, "-" * len(header)]
    for s in summaries:
        true = "-" if s.true_total is None else str(s.true_total)
        err = "-" if s.error_percent is None else f"{s.error_percent:+.1f}%"
        lines.append(f"{s.stream:<14}{s.frames:>8}{s.fps:>8.1f}{len(s.bins):>6}{s.trays:>9}{true:>7}{err:>9}"
                     f"{s.global_count:>8}")
    for s in summaries:
        lines.append(f"{s.stream}: bins counted {s.bins}" + (f", true {s.true_bins}" if s.true_bins else ""))
    return "\n".join(lines)

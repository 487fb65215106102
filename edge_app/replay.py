"""Detections replay: the public JSONL format that connects detection and counting.

One JSON object per line, one line per frame and stream::

    {"stream": "line-1", "frame": 12, "t": 0.4,
     "detections": [{"box": [x1, y1, x2, y2], "score": 0.93, "label": "tray"}]}

(shown on two lines here; in a file it is one line)

``box`` is in frame pixels, ``score`` defaults to 1.0 and ``label`` to the first class name. A frame
with no detections still has its line (``"detections": []``): the counter needs to see empty frames.
Blank lines are ignored. Streams may be interleaved; each stream's lines must be in time order.

Writers: `edge-app run --record-detections FILE` (:class:`ReplayWriter`) and `edge-app sim detections`.
Reader: :func:`read_replay`; `edge-app count --detections FILE [--config CONFIG]`
(:func:`count_from_cli`) replays a file through the same counter the app runs.

This format is a stable interface: new keys may be added, existing ones will not change meaning.
"""

from __future__ import annotations

import json
import math
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from edge_app.config import AppConfig, CounterParams, load_config
from edge_app.counter import BinCounter
from edge_app.detections import Detections
from edge_app.errors import EdgeAppError
from edge_app.roi import Roi

DEFAULT_SCORE_THRESHOLD = 0.5


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    """One line of a replay file."""

    stream: str
    frame: int
    t: float
    detections: Detections

    def to_json(self) -> str:
        return format_line(self.stream, self.frame, self.t, self.detections)


def format_line(stream: str, frame: int, t: float, detections: Detections | Sequence[dict]) -> str:
    """The JSON text of one replay line (without the newline)."""
    items = detections.to_json() if isinstance(detections, Detections) else list(detections)
    return json.dumps({"stream": stream, "frame": int(frame), "t": round(float(t), 6), "detections": items},
                      separators=(",", ":"))


class ReplayWriter:
    """Appends replay lines to a file, one flushed line per frame (a crash loses at most that line).

    Thread-safe: the app's per-stream threads may share one writer. ``"-"`` writes to stdout.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        if str(path) == "-":
            self._file: IO[str] = sys.stdout
            self._owns = False
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
            self._owns = True
        self.lines_written = 0

    def write(self, stream: str, frame: int, t: float, detections: Detections | Sequence[dict]) -> None:
        line = format_line(stream, frame, t, detections) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()
            self.lines_written += 1

    def write_record(self, record: ReplayRecord) -> None:
        self.write(record.stream, record.frame, record.t, record.detections)

    def close(self) -> None:
        with self._lock:
            if self._owns and not self._file.closed:
                self._file.close()

    def __enter__(self) -> ReplayWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bad(path: str, lineno: int, what: str) -> EdgeAppError:
    return EdgeAppError(f"{path}:{lineno}: {what}")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def parse_line(text: str, path: str = "<replay>", lineno: int = 0,
               class_names: Sequence[str] = ()) -> ReplayRecord:
    """Parse and validate one replay line; any problem is one `EdgeAppError` naming file and line."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad(path, lineno, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise _bad(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
    for key in ("stream", "frame", "t", "detections"):
        if key not in obj:
            raise _bad(path, lineno, f"missing key '{key}'")
    stream, frame, t, dets = obj["stream"], obj["frame"], obj["t"], obj["detections"]
    if not isinstance(stream, str) or not stream:
        raise _bad(path, lineno, f"stream: expected a non-empty string, got {stream!r:.40}")
    if not isinstance(frame, int) or isinstance(frame, bool) or frame < 0:
        raise _bad(path, lineno, f"frame: expected an integer >= 0, got {frame!r:.40}")
    if not _is_number(t):
        raise _bad(path, lineno, f"t: expected a number (seconds), got {t!r:.40}")
    if not isinstance(dets, list):
        raise _bad(path, lineno, f"detections: expected a list, got {type(dets).__name__}")
    for i, d in enumerate(dets):
        where = f"detections.{i}"
        if not isinstance(d, dict):
            raise _bad(path, lineno, f"{where}: expected an object, got {type(d).__name__}")
        box = d.get("box")
        if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
            raise _bad(path, lineno, f"{where}.box: expected [x1, y1, x2, y2] numbers, got {box!r:.60}")
        if "score" in d and not _is_number(d["score"]):
            raise _bad(path, lineno, f"{where}.score: expected a number, got {d['score']!r:.40}")
        if "label" in d and not isinstance(d["label"], str):
            raise _bad(path, lineno, f"{where}.label: expected a string, got {d['label']!r:.40}")
    return ReplayRecord(stream, frame, float(t), Detections.from_json(dets, class_names))


def read_replay(path: str | Path, class_names: Sequence[str] = ("tray",)) -> Iterator[ReplayRecord]:
    """Yield the records of a replay file (``"-"``: stdin), validating every line.

    A broken line raises `EdgeAppError` ``"<file>:<line>: <problem>"``. One exception: a broken
    *last* line without a final newline is what a crash while writing leaves behind; it is skipped
    with a warning on stderr instead, so a recording survives the crash of its writer.
    """
    name = str(path)
    if name == "-":
        yield from _read_lines(sys.stdin, "<stdin>", class_names)
        return
    p = Path(path)
    if not p.is_file():
        raise EdgeAppError(f"{p}: replay file not found")
    with open(p, encoding="utf-8") as f:
        yield from _read_lines(f, name, class_names)


def _read_lines(lines: Iterable[str], name: str, class_names: Sequence[str]) -> Iterator[ReplayRecord]:
    pending: tuple[int, str] | None = None  # hold one line back to know whether it is the last
    for lineno, raw in enumerate(lines, start=1):
        if pending is not None:
            yield parse_line(pending[1], name, pending[0], class_names)
            pending = None
        if not raw.strip():
            continue
        if raw.endswith("\n"):
            yield parse_line(raw, name, lineno, class_names)
        else:
            pending = (lineno, raw)
    if pending is not None:
        try:
            yield parse_line(pending[1], name, pending[0], class_names)
        except EdgeAppError as exc:
            print(f"warning: {exc} (truncated last line, skipped)", file=sys.stderr)


@dataclass
class StreamCounting:
    """How one stream's detections become a tray count."""

    params: CounterParams = field(default_factory=CounterParams)
    roi: Roi = field(default_factory=lambda: Roi(None))
    score_threshold: float = DEFAULT_SCORE_THRESHOLD
    count_classes: Sequence[str] | None = None
    line: str | None = None

    def n_trays(self, detections: Detections) -> int:
        """Trays in one frame: score >= threshold, class counted, centre inside the ROI."""
        d = detections.above(self.score_threshold)
        if self.count_classes is not None and len(d):
            wanted = set(self.count_classes)
            d = d.filter([name in wanted for name in d.names])
        return len(self.roi.filter(d))


def settings_from_config(config: AppConfig) -> tuple[dict[str, StreamCounting], StreamCounting]:
    """Per-stream counting settings of a config, and the fallback for streams it does not list."""
    model = config.model
    per_stream = {
        s.name: StreamCounting(s.counter, Roi.from_config(s), model.score_threshold, model.count_classes, s.line_id)
        for s in config.streams
    }
    return per_stream, StreamCounting(score_threshold=model.score_threshold, count_classes=model.count_classes)


def count_records(records: Iterable[ReplayRecord], settings: dict[str, StreamCounting] | None = None,
                  default: StreamCounting | None = None, warn: IO[str] | None = None) -> dict[str, BinCounter]:
    """Run every stream of ``records`` through its own `BinCounter`; returns the finished counters."""
    settings = settings or {}
    default = default or StreamCounting()
    counters: dict[str, BinCounter] = {}
    chosen: dict[str, StreamCounting] = {}
    for rec in records:
        counter = counters.get(rec.stream)
        if counter is None:
            setting = settings.get(rec.stream)
            if setting is None:
                setting = default
                if settings and warn is not None:
                    print(f"warning: stream '{rec.stream}' is not in the config: default counter parameters, "
                          "no ROI", file=warn)
            chosen[rec.stream] = setting
            counter = counters[rec.stream] = BinCounter(rec.stream, setting.line or rec.stream, setting.params)
        counter.update(rec.frame, rec.t, chosen[rec.stream].n_trays(rec.detections))
    for counter in counters.values():
        counter.finish()
    return counters


def summary(counters: dict[str, BinCounter]) -> dict:
    """``{"streams": {name: {"global": int, "bins": [int, ...]}}}`` (the last line of `edge-app count`)."""
    return {"streams": {name: {"global": c.global_count, "bins": c.bins} for name, c in counters.items()}}


def count_from_cli(detections_path: Path, config_path: Path | None) -> None:
    """`edge-app count`: one human line per stream, then the JSON summary as the last stdout line."""
    settings: dict[str, StreamCounting] = {}
    default = StreamCounting()
    class_names: Sequence[str] = ("tray",)
    if config_path is not None:
        config = load_config(config_path)
        settings, default = settings_from_config(config)
        class_names = config.model.class_names
    counters = count_records(read_replay(detections_path, class_names), settings, default, warn=sys.stderr)
    for name, c in counters.items():
        print(f"{name}: {c.global_count} trays in {len(c.bins)} bins")
    print(json.dumps(summary(counters), separators=(", ", ": ")))

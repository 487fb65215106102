"""What happens to one stream's detections after inference: filter, count, publish, record, draw.

Runs on the stream's post-processing thread (see `edge_app.pipeline.postprocess`), so it sees that
stream's frames in order and needs no locks of its own; only the replay file, shared by all streams,
is written under a lock.

Order of the filters, and why:

1. score threshold and counted classes: what the model is sure enough about, of the kinds we count;
2. *recorded* here (replay JSONL) before the ROI, so that a recording can be replayed with a different
   ROI (``edge-app count --config``) when commissioning a camera;
3. ROI (box centre in polygon): only trays in the bin being filled;
4. the counter gets the number left, and its events plus its state go to the publisher in one commit
   (the outbox stores both in one transaction, so a restart resumes exactly after the last stored event).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

from edge_app.annotate import AnnotatedVideoWriter, draw_overlay
from edge_app.detections import Detections
from edge_app.events import Event
from edge_app.frame import Frame
from edge_app.roi import Roi


class Publisher(Protocol):
    def commit(self, events: Sequence[Event], counter_states: dict[str, dict] | None = None) -> None: ...


class Counter(Protocol):
    local: int
    global_count: int
    bins: list[int]

    def update(self, frame_index: int, t: float, n_trays: int) -> list[Event]: ...

    def finish(self, t: float | None = None) -> list[Event]: ...

    def snapshot(self) -> dict[str, Any]: ...


class Recorder(Protocol):
    def write(self, stream: str, frame: int, t: float, detections: Detections) -> None: ...


class StreamProcessor:
    """The per-frame handler for one stream; call :meth:`finish` when a file stream has ended."""

    def __init__(
        self,
        stream: str,
        counter: Counter,
        roi: Roi,
        publisher: Publisher,
        *,
        score_threshold: float = 0.0,
        count_classes: Sequence[str] | None = None,
        recorder: Recorder | None = None,
        recorder_lock: threading.Lock | None = None,
        annotator: AnnotatedVideoWriter | None = None,
        fps: Any = None,
    ) -> None:
        self.stream = stream
        self.counter = counter
        self.roi = roi
        self.publisher = publisher
        self.score_threshold = score_threshold
        self.count_classes = set(count_classes) if count_classes else None
        self.recorder = recorder
        self.recorder_lock = recorder_lock or threading.Lock()
        self.annotator = annotator
        self.fps = fps
        """Optional zero-argument callable giving the stream's current fps (drawn on the video)."""
        self.frames = 0
        self.last_t: float | None = None
        self.finished = False

    def _wanted(self, detections: Detections) -> Detections:
        detections = detections.above(self.score_threshold)
        if self.count_classes is not None and len(detections):
            detections = detections.filter([name in self.count_classes for name in detections.names])
        return detections

    def __call__(self, frame: Frame, detections: Detections) -> None:
        wanted = self._wanted(detections)
        if self.recorder is not None:
            with self.recorder_lock:
                self.recorder.write(frame.stream, frame.index, frame.timestamp, wanted)
        counted = self.roi.filter(wanted)
        events = self.counter.update(frame.index, frame.timestamp, len(counted))
        if events:
            self.publisher.commit(events, {self.stream: self.counter.snapshot()})
        self.frames += 1
        self.last_t = frame.timestamp
        if self.annotator is not None:
            ignored = wanted.filter(~self.roi.contains(wanted.centers)) if len(wanted) else None
            self.annotator.write(draw_overlay(
                frame.image, counted, ignored, roi=self.roi.polygon, local=self.counter.local,
                global_count=self.counter.global_count, fps=self.fps() if self.fps else None, title=self.stream,
            ))

    def finish(self) -> list[Event]:
        """End of a file: close the last bin (see `BinCounter.finish`) and commit the final state."""
        if self.finished:
            return []
        self.finished = True
        events = self.counter.finish(self.last_t)
        self.publisher.commit(events, {self.stream: self.counter.snapshot()})
        return events

    def save_state(self) -> None:
        """Interrupted (SIGINT/SIGTERM): store the counter state as is, mid-bin, to resume after a restart."""
        self.publisher.commit([], {self.stream: self.counter.snapshot()})

    def close(self) -> None:
        if self.annotator is not None:
            self.annotator.close()

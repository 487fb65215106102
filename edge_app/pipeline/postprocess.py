"""Per-stream post-processing thread: ROI filter, counting, events, publishing (whatever the handler does).

Why off the inference thread: counting, JSON encoding, SQLite commits and video annotation are cheap
per frame but add up; done inline they would leave the detector idle. One thread per stream keeps each
stream's frames in order (the counter needs them in order) without any locking in the counter itself.
The queue in front of it is bounded and *blocking*: results are never dropped (a dropped result would
be a frame silently missing from the count); if post-processing falls behind, inference waits, the
input queues fill, and live frames are dropped there, where it is counted and reported.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from edge_app.detections import Detections
from edge_app.frame import Frame
from edge_app.pipeline.cpu import Placement
from edge_app.pipeline.jobs import Job
from edge_app.pipeline.metrics import StreamMetrics
from edge_app.pipeline.queues import put_unless
from edge_app.pipeline.split import PendingDetections

log = logging.getLogger(__name__)

FrameHandler = Callable[[Frame, Detections], None]
_END = None


class PostProcessThread(threading.Thread):
    """Calls ``handler(frame, detections)`` for each result of one stream, in order."""

    def __init__(
        self,
        name: str,
        handler: FrameHandler,
        metrics: StreamMetrics,
        *,
        maxsize: int = 64,
        on_error: Callable[[BaseException], None] | None = None,
        placement: Placement = Placement(),
    ) -> None:
        super().__init__(name=f"post-{name}", daemon=True)
        self.placement = placement
        self.handler = handler
        self.metrics = metrics
        self.on_error = on_error
        self._queue: queue.Queue[tuple[Job, Detections | PendingDetections] | None] = queue.Queue(maxsize)
        self._failed = threading.Event()

    def submit(self, job: Job, detections: Detections | PendingDetections) -> None:
        """Called by the inference worker; blocks when this stream is behind (never drops). Pending detections
        (raw outputs, `split`) are decoded here, on this thread."""
        put_unless(self._queue, (job, detections), self._failed)

    def finish(self) -> None:
        """No more results: the thread exits after the ones already queued."""
        put_unless(self._queue, _END, self._failed)

    def run(self) -> None:
        try:
            self.placement.apply()  # background: lower priority, off the inference cores (`pipeline.cpu`)
            while (item := self._queue.get()) is not _END:
                job, detections = item
                if isinstance(detections, PendingDetections):
                    detections = detections.resolve()
                self.handler(job.frame, detections)
                self.metrics.frame_done(job.decoded_at, time.monotonic())
        except BaseException as exc:  # noqa: BLE001 - reported to the pipeline, which stops cleanly
            self._failed.set()
            log.exception("stream %s: post-processing failed", self.metrics.name)
            if self.on_error:
                self.on_error(exc)

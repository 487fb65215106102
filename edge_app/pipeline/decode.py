"""One decode thread per stream: read frames, optionally prepare them (ROI mask), enqueue for inference.

Why a thread per stream: OpenCV/FFmpeg decoding releases the GIL, so decoders run in parallel with
inference, and a camera that stalls (RTSP reconnect) cannot delay the others. Preparing the frame here
(masking outside the ROI, resizing and normalising for the network: see `split`) also keeps that work off
the inference thread, the bottleneck.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

import numpy as np

from edge_app.frame import Frame
from edge_app.pipeline.cpu import Placement
from edge_app.pipeline.jobs import Job
from edge_app.pipeline.metrics import StreamMetrics
from edge_app.pipeline.queues import DropOldestQueue, QueueClosed

log = logging.getLogger(__name__)


class DecodeThread(threading.Thread):
    """Pushes every frame of ``source`` into ``queue``; closes the queue when the source ends.

    Live frames (``Frame.live``) never wait: a full queue drops its oldest frame. File frames wait for
    space, so a file is processed completely and reproducibly (see `queues`).
    """

    def __init__(
        self,
        name: str,
        source: Iterable[Frame],
        queue: DropOldestQueue[Job],
        metrics: StreamMetrics,
        stop_event: threading.Event,
        *,
        prepare: Callable[[Frame], Frame] | None = None,
        preprocess: Callable[[np.ndarray], np.ndarray] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        placement: Placement = Placement(),
    ) -> None:
        super().__init__(name=f"decode-{name}", daemon=True)
        self.placement = placement
        self.source = source
        self.queue = queue
        self.metrics = metrics
        self.stop_event = stop_event
        self.prepare = prepare
        self.preprocess = preprocess
        self.on_error = on_error
        self.exhausted = False
        self.skipped = 0
        """Frames that could not be prepared (e.g. a malformed image): skipped and counted, never fatal."""
        """True when the source ended by itself (end of file, ``max_frames``), not by a stop request."""

    def _job(self, frame: Frame) -> Job:
        if self.prepare is not None:
            frame = self.prepare(frame)
        job = Job(frame, time.monotonic())
        if self.preprocess is not None:
            job.tensor = self.preprocess(frame.image)
        self.metrics.frame_in()
        return job

    def run(self) -> None:
        try:
            self.placement.apply()  # background: lower priority, off the inference cores (`pipeline.cpu`)
            for frame in self.source:
                if self.stop_event.is_set():
                    break
                try:
                    job = self._job(frame)
                except Exception as exc:  # noqa: BLE001 - one bad frame is skipped, never fatal
                    self.skipped += 1
                    if self.skipped == 1 or self.skipped % 100 == 0:
                        log.warning("stream %s: frame %d skipped (%s); %d skipped so far", self.metrics.name,
                                    frame.index, exc, self.skipped)
                    continue
                try:
                    self.queue.put(job, block=not frame.live)
                except QueueClosed:
                    break
                self.metrics.dropped = self.queue.dropped
            else:
                self.exhausted = not self.stop_event.is_set()
        except BaseException as exc:  # noqa: BLE001 - reported to the pipeline, which stops cleanly
            log.exception("stream %s: decoding failed", self.metrics.name)
            if self.on_error:
                self.on_error(exc)
        finally:
            self.queue.close()

"""One inference worker per device: take a batch, run the detector, hand results to post-processing.

Why exactly one per device: a detector session already uses every core of its device (ONNX Runtime's
intra-op threads, or a GPU's SMs); a second worker on the same device would only make the two fight
for the same units and add context switches. The worker does nothing but inference, so the device
never waits for Python-side post-processing or counting (those run on per-stream threads).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from edge_app.detections import Detections
from edge_app.pipeline.cpu import Placement
from edge_app.pipeline.jobs import BatchDetector, Job
from edge_app.pipeline.metrics import PipelineMetrics
from edge_app.pipeline.split import PendingDetections, PreparedDetector
from edge_app.pipeline.stacking import Batch

log = logging.getLogger(__name__)


class BatchFeed(Protocol):
    """Where a worker's batches come from: `stacking.InlineStacking` or `stacking.StackAhead`."""

    def next_batch(self) -> Batch: ...

    def close(self) -> None: ...


class InferenceWorker(threading.Thread):
    """Runs ``detector`` on batches from ``feed`` until it returns a batch without jobs."""

    def __init__(
        self,
        name: str,
        feed: BatchFeed,
        detector: BatchDetector,
        deliver: Callable[[Job, Detections | PendingDetections], None],
        metrics: PipelineMetrics,
        *,
        on_error: Callable[[BaseException], None] | None = None,
        placement: Placement = Placement(),
    ) -> None:
        super().__init__(name=f"infer-{name}", daemon=True)
        self.feed = feed
        self.detector = detector
        self._prepared = isinstance(detector, PreparedDetector)  # once: a runtime Protocol check costs per call
        self.deliver = deliver
        self.metrics = metrics
        self.on_error = on_error
        self.placement = placement

    def _detect(self, batch: Batch) -> list[Detections] | list[PendingDetections]:
        """Run the tensors the decode threads prepared (already stacked; outputs decoded later, on the
        post-processing threads: `split`), or let the detector preprocess and decode."""
        if batch.tensors is not None and self._prepared:
            return self.detector.detect_pending(batch.tensors, [job.frame.image.shape[:2] for job in batch.jobs])
        return self.detector.detect([job.frame.image for job in batch.jobs])

    def run(self) -> None:
        try:
            self.placement.apply()  # the inference cores (`pipeline.cpu.CorePlan`)
            while (batch := self.feed.next_batch()).jobs:
                started = time.perf_counter()
                results = self._detect(batch)
                self.metrics.record_batch(len(batch.jobs), time.perf_counter() - started)
                if len(results) != len(batch.jobs):
                    raise RuntimeError(f"detector returned {len(results)} results for {len(batch.jobs)} frames")
                for job, detections in zip(batch.jobs, results, strict=True):
                    self.deliver(job, detections)
        except BaseException as exc:  # noqa: BLE001 - reported to the pipeline, which stops cleanly
            log.exception("inference worker %s failed", self.name)
            if self.on_error:
                self.on_error(exc)
        finally:
            self.feed.close()

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

import numpy as np

from edge_app.detections import Detections
from edge_app.pipeline.batcher import DynamicBatcher
from edge_app.pipeline.cpu import Placement
from edge_app.pipeline.jobs import BatchDetector, Job
from edge_app.pipeline.metrics import PipelineMetrics
from edge_app.pipeline.split import PreparedDetector

log = logging.getLogger(__name__)


class InferenceWorker(threading.Thread):
    """Runs ``detector`` on batches from ``batcher`` until it returns an empty batch."""

    def __init__(
        self,
        name: str,
        batcher: DynamicBatcher[Job],
        detector: BatchDetector,
        deliver: Callable[[Job, Detections], None],
        metrics: PipelineMetrics,
        *,
        on_error: Callable[[BaseException], None] | None = None,
        placement: Placement = Placement(),
    ) -> None:
        super().__init__(name=f"infer-{name}", daemon=True)
        self.batcher = batcher
        self.detector = detector
        self.deliver = deliver
        self.metrics = metrics
        self.on_error = on_error
        self.placement = placement

    def _detect(self, batch: list[Job]) -> list[Detections]:
        """Stack the tensors the decode threads prepared, or let the detector preprocess the frames."""
        if isinstance(self.detector, PreparedDetector) and all(job.tensor is not None for job in batch):
            tensors = np.stack([job.tensor for job in batch])  # type: ignore[misc]
            return self.detector.detect_prepared(tensors, [job.frame.image.shape[:2] for job in batch])
        return self.detector.detect([job.frame.image for job in batch])

    def run(self) -> None:
        try:
            self.placement.apply()  # the inference cores (`pipeline.cpu.CorePlan`)
            while batch := self.batcher.next_batch():
                started = time.perf_counter()
                results = self._detect(batch)
                self.metrics.record_batch(len(batch), time.perf_counter() - started)
                if len(results) != len(batch):
                    raise RuntimeError(f"detector returned {len(results)} results for {len(batch)} frames")
                for job, detections in zip(batch, results, strict=True):
                    self.deliver(job, detections)
        except BaseException as exc:  # noqa: BLE001 - reported to the pipeline, which stops cleanly
            log.exception("inference worker %s failed", self.name)
            if self.on_error:
                self.on_error(exc)

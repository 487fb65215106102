"""Multi-stream pipeline: decode thread per stream, drop-oldest queues, dynamic batching across streams,
one inference worker per device, per-stream post-processing, metrics. See `runner.Pipeline`."""

from edge_app.pipeline.batcher import DynamicBatcher
from edge_app.pipeline.metrics import PipelineMetrics, StreamMetrics
from edge_app.pipeline.queues import DropOldestQueue, QueueClosed
from edge_app.pipeline.runner import Pipeline

__all__ = ["DropOldestQueue", "DynamicBatcher", "Pipeline", "PipelineMetrics", "QueueClosed", "StreamMetrics"]

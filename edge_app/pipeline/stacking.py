"""Stack a batch's prepared tensors into one contiguous array, either on the inference thread or one batch ahead.

The decode threads prepare each frame's network input (`split`), but the detector wants one ``(B, 3, h, w)``
array, so somebody copies B tensors (about 1 MB each for a 300x300 SSD) into it. On the inference thread that
copy runs between two detector calls, while the core the detector owns does nothing useful; measured on the
2-core development machine it took 0.18 / 0.45 / 0.58 ms per frame at 1 / 4 / 8 streams, against ~5 ms of
inference: the size of the gap between the pipeline and the bare session (README, Performance).

`StackAhead` moves it to a background thread (on the background cores, at background priority) that takes the
*next* batch from the batcher and stacks it while the detector runs the current one, then waits with it in a
one-slot hand-over. `InlineStacking` is the old way, kept for comparison (``pipeline.stack_ahead: false``).

What stacking ahead costs: a batch that is already stacked no longer sits in the per-stream drop-oldest queues,
so under overload it is inferred even if newer frames arrived meanwhile. That is one batch (``max_batch`` frames)
more latency at most, and only when the detector is already the bottleneck.

Buffers: each batch is stacked into one of a few preallocated arrays used in rotation (three: one the detector
reads, one waiting in the hand-over, one being filled), so no 4 MB array is allocated (and page-faulted in) per
batch. The batch handed out is a view of the first ``len(jobs)`` rows.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

import numpy as np

from edge_app.pipeline.batcher import DynamicBatcher
from edge_app.pipeline.cpu import Placement
from edge_app.pipeline.jobs import Job
from edge_app.pipeline.queues import put_unless


@dataclass(slots=True)
class Batch:
    """Frames for one detector call; ``tensors`` is their stacked network input when every frame was prepared."""

    jobs: list[Job]
    tensors: np.ndarray | None = None


class StackBuffers:
    """``count`` reusable ``(max_batch, *tensor_shape)`` float32 arrays, handed out in rotation.

    Rotation is safe as long as no more than ``count - 1`` stacked batches are alive at once (the reader of the
    oldest has finished before its array comes round again): `StackAhead` guarantees it with a one-slot hand-over.
    """

    def __init__(self, max_batch: int, count: int) -> None:
        self.max_batch = max_batch
        self.count = count
        self._arrays: list[np.ndarray] = []
        self._next = 0

    def stack(self, jobs: list[Job]) -> Batch:
        """The jobs with their tensors copied into the next buffer; ``tensors`` is None if any job has none."""
        tensors = [job.tensor for job in jobs]
        if not jobs or any(t is None for t in tensors) or len(jobs) > self.max_batch:
            return Batch(jobs)
        shape = tensors[0].shape  # type: ignore[union-attr]
        if any(t.shape != shape for t in tensors):  # type: ignore[union-attr]
            return Batch(jobs)
        if not self._arrays or self._arrays[0].shape[1:] != shape:
            self._arrays = [np.empty((self.max_batch, *shape), np.float32) for _ in range(self.count)]
        out = self._arrays[self._next][: len(jobs)]
        self._next = (self._next + 1) % self.count
        np.stack(tensors, out=out)  # type: ignore[arg-type]
        return Batch(jobs, out)


class InlineStacking:
    """Takes a batch from the batcher and stacks it on the calling (inference) thread."""

    def __init__(self, batcher: DynamicBatcher[Job]) -> None:
        self.batcher = batcher
        self._buffers = StackBuffers(batcher.max_batch, count=1)

    def next_batch(self) -> Batch:
        """The next batch; no jobs once the batcher is finished or stopped."""
        return self._buffers.stack(self.batcher.next_batch())

    def close(self) -> None:
        """The consumer has gone: nothing to release."""


_END = Batch([])


class StackAhead(threading.Thread):
    """Stacks the next batch on a background thread while the inference worker runs the current one."""

    HAND_OVER_POLL_S = 0.1
    """How often a stacker waiting to hand over a batch checks that its worker is still there."""

    def __init__(self, name: str, batcher: DynamicBatcher[Job], *, placement: Placement = Placement()) -> None:
        super().__init__(name=f"stack-{name}", daemon=True)
        self.batcher = batcher
        self.placement = placement
        self._buffers = StackBuffers(batcher.max_batch, count=3)
        self._ready: queue.Queue[Batch] = queue.Queue(maxsize=1)
        self._closed = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.placement.apply()  # background: `pipeline.cpu`
            while jobs := self.batcher.next_batch():
                if not self._hand_over(self._buffers.stack(jobs)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the worker, which reports it to the pipeline
            self.error = exc
        self._hand_over(_END)

    def _hand_over(self, batch: Batch) -> bool:
        """Block until the worker takes ``batch``; False when the worker has gone (``close``)."""
        return put_unless(self._ready, batch, self._closed, self.HAND_OVER_POLL_S)

    def next_batch(self) -> Batch:
        """The next stacked batch; no jobs at the end. Raises what went wrong on the stacking thread."""
        batch = self._ready.get()
        if batch is _END and self.error is not None:
            raise RuntimeError(f"{self.name} failed: {self.error}") from self.error
        return batch

    def close(self) -> None:
        """Called by the worker when it exits, so a stacker waiting to hand over a batch gives up."""
        self._closed.set()

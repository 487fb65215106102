"""Dynamic batching across streams: fill a batch up to ``max_batch`` frames or until ``max_wait_s``.

The trade-off (as in the TorchServe dynamic-batching article: "batch_size" and "max_batch_delay",
whichever comes first): a detector runs a batch of B frames in less than B times the time of one
frame, because the fixed per-call cost (graph dispatch, memory set-up, thread wake-up) is paid once
and the matrix kernels run on larger, better-vectorised tensors. On this project's SSD on a 2-core CPU,
batch 4 costs ~65 % per frame of batch 1. So batching raises *throughput*.

It costs *latency*: a frame that arrives first waits for the others. With per-frame inference time
``t(B)/B`` and frames arriving at a total rate ``r`` from all streams, the first frame of a batch waits up
to ``min(max_wait_s, (B-1)/r)`` before inference starts, then ``t(B)`` for the whole batch. Hence:

* ``max_batch`` bounds the work (and the latency) of one call; choose it where throughput stops
  growing (see ``edge-app bench detector``);
* ``max_wait_s`` bounds the extra delay a lone frame can suffer when the load is light: a single
  camera at 15 fps should not wait for three frames that will take 200 ms to arrive. Under heavy load
  the queues are never empty, batches fill at once and the wait never happens.

Frames are taken round-robin, one per stream per round, so that a fast stream cannot starve the
others, and frames of one stream keep their order (counting depends on it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from typing import Generic, TypeVar

from edge_app.pipeline.queues import DropOldestQueue

T = TypeVar("T")


class DynamicBatcher(Generic[T]):
    """Collects items from several per-stream queues into batches for an inference worker.

    Create the queues through :meth:`add_queue` so they share the batcher's condition variable.
    :meth:`next_batch` returns an empty list once every queue is closed and drained, or after
    :meth:`stop`: that is the worker's signal to exit.
    """

    def __init__(self, max_batch: int, max_wait_s: float) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._cond = threading.Condition()  # RLock inside: the queues re-enter it
        self._queues: dict[Hashable, DropOldestQueue[T]] = {}
        self._order: list[Hashable] = []
        self._next = 0
        self._stopped = False

    def add_queue(self, key: Hashable, maxsize: int) -> DropOldestQueue[T]:
        queue: DropOldestQueue[T] = DropOldestQueue(maxsize, condition=self._cond)
        with self._cond:
            if key in self._queues:
                raise ValueError(f"queue {key!r} already exists")
            self._queues[key] = queue
            self._order.append(key)
        return queue

    @property
    def queues(self) -> dict[Hashable, DropOldestQueue[T]]:
        return dict(self._queues)

    def stop(self) -> None:
        """Make every current and future :meth:`next_batch` return ``[]`` promptly."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _any_ready(self) -> bool:
        return any(len(q) for q in self._queues.values())

    def _all_finished(self) -> bool:
        return all(q.finished for q in self._queues.values())

    def _take_round_robin(self, batch: list[T]) -> None:
        """Move items into ``batch``, one per stream per round, starting at a rotating stream."""
        n = len(self._order)
        if n == 0:
            return
        start = self._next
        self._next = (self._next + 1) % n
        progressed = True
        while progressed and len(batch) < self.max_batch:
            progressed = False
            for i in range(n):
                if len(batch) >= self.max_batch:
                    break
                item = self._queues[self._order[(start + i) % n]].pop_nowait()
                if item is not None:
                    batch.append(item)
                    progressed = True

    def next_batch(self) -> list[T]:
        """Block until at least one item is available; then return up to ``max_batch`` items,
        waiting at most ``max_wait_s`` (from the first item) for the batch to fill."""
        with self._cond:
            self._cond.wait_for(lambda: self._stopped or self._any_ready() or self._all_finished())
            if self._stopped:
                return []
            batch: list[T] = []
            deadline = time.monotonic() + self.max_wait_s
            while True:
                self._take_round_robin(batch)
                if len(batch) >= self.max_batch or self._stopped or self._all_finished():
                    return batch
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return batch
                self._cond.wait(remaining)

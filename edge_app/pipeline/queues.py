"""Bounded frame queue that drops the oldest item under overload, and counts what it dropped.

Why drop the *oldest*: for a live camera a frame that waited behind newer ones is stale; counting
trays needs the current view, not a backlog. When inference cannot keep up, keeping the newest frame
bounds latency (at most ``maxsize`` frames of delay) and memory, and the drop counter tells the
operator that the device is overloaded (it is published in the health heartbeat).

Why ``put(block=True)`` exists too: a video *file* is not real time. Dropping its frames would
change the count and make a run unreproducible, so file sources wait for space instead (back
pressure): they are decoded exactly as fast as inference consumes them.

Several queues may share one :class:`threading.Condition` so that a consumer (the batcher) can wait
for "an item in any of my queues" without polling.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class QueueClosed(Exception):
    """Raised by :meth:`DropOldestQueue.put` after :meth:`DropOldestQueue.close`."""


class DropOldestQueue(Generic[T]):
    """A bounded FIFO; a non-blocking put into a full queue evicts the oldest item.

    Thread-safe. ``dropped`` counts evicted items, ``accepted`` counts items put in.
    """

    def __init__(self, maxsize: int, *, condition: threading.Condition | None = None) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._cond = condition or threading.Condition()
        self._closed = False
        self.dropped = 0
        self.accepted = 0

    @property
    def condition(self) -> threading.Condition:
        return self._cond

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, item: T, *, block: bool = False, timeout: float | None = None) -> T | None:
        """Append ``item``; return the evicted oldest item, or ``None`` if nothing was dropped.

        With ``block=True`` wait for space instead of evicting (up to ``timeout`` seconds, after
        which the oldest item is evicted anyway). Raises :class:`QueueClosed` if the queue is closed.
        """
        with self._cond:
            if block:
                self._cond.wait_for(lambda: self._closed or len(self._items) < self.maxsize, timeout)
            if self._closed:
                raise QueueClosed
            evicted = None
            if len(self._items) >= self.maxsize:
                evicted = self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.accepted += 1
            self._cond.notify_all()
            return evicted

    def pop_nowait(self) -> T | None:
        """The oldest item, or ``None`` if empty. Call with or without the condition held."""
        with self._cond:
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()  # a blocked producer may now have space
            return item

    def get(self, timeout: float | None = None) -> T | None:
        """Wait for an item; ``None`` on timeout or when the queue is closed and drained."""
        with self._cond:
            self._cond.wait_for(lambda: self._items or self._closed, timeout)
            return self.pop_nowait()

    def close(self) -> None:
        """No more puts; consumers drain what is left. Wakes every waiter."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        """Closed and drained: nothing will ever come out of this queue again."""
        with self._cond:
            return self._closed and not self._items


def put_unless(q: queue.Queue[T], item: T, gone: threading.Event, poll_s: float = 0.2) -> bool:
    """Blocking ``q.put(item)`` that gives up (False) once ``gone`` is set: for handing results to a consumer
    thread that may have died, without ever dropping them while it lives."""
    while not gone.is_set():
        try:
            q.put(item, timeout=poll_s)
            return True
        except queue.Full:
            continue
    return False

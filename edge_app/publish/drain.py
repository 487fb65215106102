"""Feeds the outbox to a transport (paho or awscrt) in order, with a bounded in-flight window.

Transport-agnostic: the transport gives a ``send(message) -> token`` function and calls `ack(token)`
when the broker acknowledged (PUBACK), or `nack(token)` when a publish definitively failed. Acks are
queued and applied by the drainer's own thread (batched into one DELETE transaction), never in the
transport's network thread: a network callback must not wait on SQLite, and, because the drainer
records ``token -> seq`` right after ``send`` returns in that same thread, an ack that arrives before
the mapping is recorded cannot be lost.

Rows are handed over in ``seq`` order; at most ``window`` are unacknowledged at any time, so memory
stays bounded however long the backlog. While the transport is down nothing is handed over (paho
itself re-sends what was in flight when the connection dropped, in order, after reconnecting).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable

from edge_app.publish.outbox import Outbox, OutboxError, QueuedMessage

log = logging.getLogger(__name__)

GATHER_S = 0.002
ACK_BATCH = 500
ACK_DELAY_S = 0.05
"""Acknowledged rows are deleted in batches (<= 50 ms late): far fewer write transactions competing with
`Outbox.commit`; the price is that a crash may re-send up to 50 ms of already delivered messages, which
at-least-once delivery with de-duplication by id already allows."""


class OutboxDrainer:
    def __init__(self, outbox: Outbox, send: Callable[[QueuedMessage], Hashable | None], *,
                 ready: Callable[[], bool], window: int = 200, name: str = "outbox-drainer") -> None:
        self.outbox = outbox
        self._send = send
        self._ready = ready
        self.window = window
        self._events: queue.SimpleQueue[tuple[Hashable, bool]] = queue.SimpleQueue()
        self._inflight: dict[Hashable, int] = {}
        self._cursor = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.sent_total = 0
        self.acked_total = 0
        self._acked: list[int] = []
        self._last_delete = time.monotonic()

    # called from any thread
    def ack(self, token: Hashable) -> None:
        self._events.put((token, True))
        self._wake.set()

    def nack(self, token: Hashable) -> None:
        self._events.put((token, False))
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def flush(self, timeout: float) -> bool:
        """Wait until the outbox is empty and nothing is in flight; False when ``timeout`` ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.outbox.depth == 0 and not self._inflight:
                return True
            if not self._inflight and self._acked:  # only deferred deletes left
                self._wake.set()
            self._wake.set()
            time.sleep(0.02)
        return self.outbox.depth == 0 and not self._inflight

    # drainer thread
    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                handed = self._step()
            except OutboxError as exc:  # e.g. disk I/O error while deleting: keep trying, never crash
                log.error("outbox drainer: %s", exc)
                handed = 0
                time.sleep(1.0)
            if not handed:
                self._wake.wait(ACK_DELAY_S if self._acked else 0.5)
                self._wake.clear()
        self._apply_acks(force=True)

    def _step(self) -> int:
        self._apply_acks()
        room = self.window - len(self._inflight)
        if room <= 0 or not self._ready():
            return 0
        time.sleep(GATHER_S)  # let a burst of commits accumulate: one query and one wake-up for many rows
        handed = 0
        for message in self.outbox.fetch_after(self._cursor, room):
            token = self._send(message)
            if token is None:  # transport refused (e.g. connection just dropped): retry from here later
                break
            self._inflight[token] = message.seq
            self._cursor = message.seq
            handed += 1
        self.sent_total += handed
        return handed

    def _apply_acks(self, force: bool = False) -> None:
        acked = self._acked
        while True:
            try:
                token, ok = self._events.get_nowait()
            except queue.Empty:
                break
            seq = self._inflight.pop(token, None)
            if seq is None:
                continue
            if ok:
                acked.append(seq)
            else:  # re-send from the failed message on (at-least-once; later ones may be duplicated)
                self._cursor = min(self._cursor, seq - 1)
        now = time.monotonic()
        if acked and (force or len(acked) >= ACK_BATCH or now - self._last_delete >= ACK_DELAY_S):
            self.outbox.ack(acked)
            self.acked_total += len(acked)
            self._acked = []
            self._last_delete = now

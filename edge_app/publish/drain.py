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

Two paths, one order: in the steady state the committing thread hands its just-stored rows straight to
the transport (`offer`); whenever that is not possible (a backlog, the link down, the window full, the
drainer busy) the drainer thread reads the outbox from its cursor instead. ``_needs_fetch`` says whether
the outbox may hold rows beyond the cursor, so acks alone never cause a pointless query; as a safety net
the drainer looks anyway once per idle second.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable

from edge_app.publish.outbox import Outbox, QueuedMessage

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
        self._send_lock = threading.Lock()
        """Guards ``_cursor``, ``_inflight`` and the order of sends between the drainer thread and `offer`."""
        self._inflight: dict[Hashable, int] = {}
        self._cursor = 0
        self._needs_fetch = True
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.sent_total = 0
        self.acked_total = 0
        self._acked: list[int] = []
        self._last_delete = time.monotonic()

    # ------------------------------------------------------------------ any thread
    def ack(self, token: Hashable) -> None:
        self._events.put((token, True))
        if len(self._inflight) >= self.window:  # a full window waits for this ack
            self._wake.set()

    def nack(self, token: Hashable) -> None:
        self._events.put((token, False))
        self._needs_fetch = True
        self._wake.set()

    def wake(self) -> None:
        """The outbox may hold rows the drainer has not seen (new backlog, link back up)."""
        self._needs_fetch = True
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
        self.wake()
        while time.monotonic() < deadline:
            if self.outbox.depth == 0 and not self._inflight:
                return True
            self._wake.set()  # apply acks / deferred deletes now
            time.sleep(0.02)
        return self.outbox.depth == 0 and not self._inflight

    def offer(self, rows: list[QueuedMessage]) -> None:
        """Fast path, called by the committing thread right after `Outbox.commit` stored ``rows``.

        When the drainer is caught up (nothing older is waiting: ``cursor`` is just below the first new
        ``seq``), the link is up and the window has room, the rows are handed to the transport here and
        now: no thread hand-off and no re-reading of what was just written, so the steady-state cost is
        that of plain publishing plus the SQLite commit. Anything else (backlog, link down, drainer busy)
        wakes the drainer, which reads from the outbox in order; per-topic order holds either way.
        """
        if not rows:
            return
        if self._send_lock.acquire(blocking=False):
            try:
                if (self._cursor == rows[0].seq - 1 and len(self._inflight) + len(rows) <= self.window
                        and self._ready()):
                    self._hand_over(rows)
                    return
            finally:
                self._send_lock.release()
        self.wake()

    # ------------------------------------------------------------------ drainer thread
    def _run(self) -> None:
        idle_since = time.monotonic()
        while not self._stopping.is_set():
            try:
                handed = self._step()
            except Exception:  # noqa: BLE001 - e.g. disk I/O error while deleting: log, retry, never die
                log.exception("outbox drainer: unexpected error; retrying in 1 s")
                handed = 0
                self._needs_fetch = True
                self._stopping.wait(1.0)
            if handed:
                idle_since = time.monotonic()
                continue
            self._wake.wait(ACK_DELAY_S if (self._acked or self._inflight) else 0.5)
            self._wake.clear()
            if time.monotonic() - idle_since > 1.0:  # safety net against any missed wake-up
                self._needs_fetch = True
                idle_since = time.monotonic()
        self._apply_acks(force=True)

    def _step(self) -> int:
        self._apply_acks()
        if not self._needs_fetch or len(self._inflight) >= self.window or not self._ready():
            return 0
        time.sleep(GATHER_S)  # let a burst of commits accumulate: one query and one wake-up for many rows
        with self._send_lock:
            room = self.window - len(self._inflight)
            if room <= 0:
                return 0
            self._needs_fetch = False  # cleared before reading: a later wake() re-arms it
            rows = self.outbox.fetch_after(self._cursor, room)
            handed = self._hand_over(rows)
            if len(rows) == room or handed < len(rows):
                self._needs_fetch = True
            return handed

    def _hand_over(self, rows: list[QueuedMessage]) -> int:
        """Send rows in order; stop at the first the transport refuses. Caller holds ``_send_lock``."""
        handed = 0
        for message in rows:
            token = self._send(message)
            if token is None:  # transport refused (e.g. connection just dropped): retry from here later
                self._needs_fetch = True
                self._wake.set()
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
            with self._send_lock:
                seq = self._inflight.pop(token, None)
                if seq is not None and not ok:  # re-send from the failed one on (later ones may repeat)
                    self._cursor = min(self._cursor, seq - 1)
            if seq is not None and ok:
                acked.append(seq)
        now = time.monotonic()
        if acked and (force or len(acked) >= ACK_BATCH or now - self._last_delete >= ACK_DELAY_S):
            self.outbox.ack(acked)
            self.acked_total += len(acked)
            self._acked = []
            self._last_delete = now


class DrainedTransport:
    """What every transport (paho MQTT, AWS IoT Core) exposes to the publisher facade around its drainer.

    Subclasses set ``self.drainer`` (an `OutboxDrainer`) and ``self._online`` (set once the outbox may flow).
    """

    drainer: OutboxDrainer
    _online: threading.Event

    def wake(self) -> None:
        self.drainer.wake()

    def offer(self, rows: list[QueuedMessage]) -> None:
        """Just-committed rows: sent at once when caught up, else left to the drainer (`OutboxDrainer.offer`)."""
        self.drainer.offer(rows)

    def wait_connected(self, timeout: float) -> bool:
        return self._online.wait(timeout)

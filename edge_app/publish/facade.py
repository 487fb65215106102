"""`EventPublisher`: the one object the app talks to for everything that leaves the box.

The app calls, from its counting loop::

    publisher = EventPublisher(cfg)                 # opens <state_dir>/outbox.db, checks TLS files
    states = publisher.restore_counter_states()     # {stream: BinCounter.snapshot() dict}
    publisher.start()                               # connects in the background, never blocks
    publisher.commit(events, {stream: counter.snapshot()})   # durable in one transaction
    publisher.publish_health({...})                 # every few seconds
    publisher.stop(timeout=5)                       # flush what it can; the outbox keeps the rest

``commit`` only writes SQLite (tens of microseconds), so a broker that is down never slows counting.
Thread-safe: streams may commit from their own threads (one lock; SQLite serialises writers anyway).
If the disk is full (`OutboxFullError`) or the DB cannot be written (`OutboxError`), the batch is kept
in memory (bins always, at most ``MAX_PENDING_COUNTS`` other messages) and retried on the next call; an
alarm is queued once it is stored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence

from edge_app.config import AppConfig
from edge_app.events import Event
from edge_app.publish.messages import NEVER_DROP, OutboundMessage
from edge_app.publish.outbox import Outbox, OutboxError

log = logging.getLogger(__name__)

MAX_PENDING_COUNTS = 10_000


class EventPublisher:
    def __init__(self, cfg: AppConfig, *, outbox: Outbox | None = None, transport: object | None = None) -> None:
        self.cfg = cfg
        self.outbox = outbox or Outbox.from_config(cfg)
        self.transport = transport if transport is not None else _make_transport(cfg, self.outbox)
        self._lines = {s.name: s.line_id for s in cfg.streams}
        self._pending: list[OutboundMessage] = []
        self._pending_states: dict[str, dict] = {}
        self.disk_full = False
        self.started_at = time.time()
        self._lock = threading.Lock()
        self._stopped: bool | None = None

    def start(self) -> None:
        if self.transport is not None:
            self.transport.start()  # type: ignore[attr-defined]

    def restore_counter_states(self) -> dict[str, dict]:
        """The counter states committed last (with the events they produced), by stream name."""
        return self.outbox.load_counter_states()

    def commit(self, events: Sequence[Event], counter_states: Mapping[str, dict] | None = None) -> None:
        """Durably queue ``events`` and store ``counter_states`` in the same transaction. Never blocks on
        the network. Raises nothing on a full disk (keeps the batch in memory and retries), see module doc."""
        for_event = self.outbox.builder.for_event
        self._commit_messages([for_event(e) for e in events], counter_states or {})

    def publish_health(self, health: Mapping) -> None:
        """Queue the heartbeat on ``<prefix>/health`` (+ per-line fps on ``<prefix>/<line>/telemetry``).

        Expected keys from the app (all optional, passed through): ``uptime_s``, ``model_version``,
        ``inference_latency_ms: {p50, p95}``, ``streams: {name: {fps, dropped_frames, ...}}``. Added here:
        ``outbox: {depth, bytes, max_bytes, dropped_total, oldest_age_s}``, ``broker: {connected, ...}``.
        """
        now = time.time()
        body = dict(health)
        body.setdefault("uptime_s", round(now - self.started_at, 1))
        body["outbox"] = self.outbox.stats()
        body["broker"] = self.transport.state() if self.transport is not None else {"transport": None}  # type: ignore[attr-defined]
        body["disk_full"] = self.disk_full
        messages = [self.outbox.builder.health(body, now)]
        for stream, stats in (health.get("streams") or {}).items():
            if isinstance(stats, Mapping) and "fps" in stats:
                line = self._lines.get(stream, stream)
                messages.append(self.outbox.builder.telemetry(line, stream, stats, now))
        self._commit_messages(messages, {})

    def stats(self) -> dict:
        return {"outbox": self.outbox.stats(), "pending_in_memory": len(self._pending), "disk_full": self.disk_full,
                "broker": self.transport.state() if self.transport is not None else None}  # type: ignore[attr-defined]

    def stop(self, timeout: float = 5.0) -> bool:
        """Flush for up to ``timeout`` seconds, close the connection and the DB. True if nothing is left.
        Idempotent: a second call returns the first call's result."""
        if self._stopped is not None:
            return self._stopped
        flushed = True
        if self._pending:
            self._commit_messages([], {})
        if self.transport is not None:
            flushed = bool(self.transport.stop(timeout))  # type: ignore[attr-defined]
        flushed = flushed and self.outbox.depth == 0 and not self._pending
        self.outbox.close()
        self._stopped = flushed
        return flushed

    # ------------------------------------------------------------------
    def _commit_messages(self, messages: list[OutboundMessage], states: Mapping[str, dict]) -> None:
        with self._lock:
            self._commit_locked(messages, states)

    def _commit_locked(self, messages: list[OutboundMessage], states: Mapping[str, dict]) -> None:
        if self.transport is None:  # nothing would ever drain the queue: keep only the counter states
            messages = []
        if self._pending or self._pending_states:
            batch, merged_states = self._pending + messages, {**self._pending_states, **states}
        else:
            batch, merged_states = messages, states
        try:
            stored = self.outbox.commit(batch, merged_states)
        except OutboxError as exc:  # disk full (or another write failure): never lose the batch, never crash
            if not self.disk_full:
                log.error("%s; keeping messages in memory until the outbox is writable again", exc)
            self.disk_full = True
            self._pending = _bounded(batch)
            self._pending_states = dict(merged_states)
            return
        if self.disk_full:
            log.warning("outbox writable again; %d messages kept in memory were stored", len(batch))
            self.disk_full = False
            self.outbox.commit([self.outbox.builder.alarm("disk_full_recovered", "outbox was full; messages kept "
                                                          "in memory have been stored", time.time())], {})
        if self._pending or self._pending_states:
            self._pending, self._pending_states = [], {}
        if self.transport is not None:
            self.transport.offer(stored)  # type: ignore[attr-defined]


def _bounded(batch: list[OutboundMessage]) -> list[OutboundMessage]:
    """Keep every bin; keep only the newest ``MAX_PENDING_COUNTS`` droppable messages."""
    droppable = [m for m in batch if m.priority < NEVER_DROP]
    if len(droppable) <= MAX_PENDING_COUNTS:
        return batch
    keep = {id(m) for m in droppable[-MAX_PENDING_COUNTS:]}
    return [m for m in batch if m.priority >= NEVER_DROP or id(m) in keep]


def _make_transport(cfg: AppConfig, outbox: Outbox) -> object | None:
    if cfg.iot_core is not None and cfg.iot_core.enabled:
        from edge_app.publish.iot_core import IotCorePublisher

        return IotCorePublisher(cfg, outbox)
    if cfg.mqtt.enabled:
        from edge_app.publish.mqtt import MqttPublisher

        return MqttPublisher(cfg, outbox)
    return None

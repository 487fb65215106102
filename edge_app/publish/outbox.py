"""Durable outbox: every outgoing message is stored in SQLite before it is sent, deleted on PUBACK.

Why SQLite in WAL mode: one file, transactions, crash safety for free. A committed transaction is in the
WAL file before ``commit()`` returns, so ``kill -9`` of the app never loses it (``synchronous=normal``);
``synchronous=full`` also fsyncs every commit, which survives power loss at the price of one fsync each.

Crash-safe counting: `Outbox.commit` writes the events a counter produced *and* that counter's state
(an opaque JSON dict) in ONE transaction. After a crash the app restores exactly the state that matches
the last stored events: a bin is never lost (its event is stored with the state that completed it) and
never counted twice (the restored state already includes it). Bin message ids are unique per
``(stream, bin_id)`` in the outbox (``INSERT OR IGNORE``), so re-committing an undelivered bin is a no-op.

Order: rows get an increasing ``seq`` and are sent in ``seq`` order, so per-topic order holds.

Bounded on disk (``max_bytes`` of queued payload): when exceeded, the oldest messages of the lowest
priority are dropped first (health/telemetry, then counts, then anomalies/alarms) down to 90 % of the
cap, ``dropped_total`` grows and one coalesced ``outbox_full`` alarm message is queued. Bins are
never dropped: the cap may be exceeded by bins alone (a bin is ~400 bytes; a line fills a few per hour).
A real "disk full" (``SQLITE_FULL``) first frees space the same way and retries once, then raises
`OutboxFullError` so the caller can keep the batch in memory and retry (see `EventPublisher.commit`).

Corrupt DB at start-up (``on_corrupt="quarantine"``, the default): the files are moved to
``<state_dir>/corrupt-<UTC time>/``, whatever is still readable (counter states, queued messages) is
salvaged into a fresh DB, and a ``state_db_corrupt`` alarm is queued. ``on_corrupt="fail"`` raises a
one-line `EdgeAppError` instead.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from edge_app.errors import EdgeAppError
from edge_app.events import AnomalyResult, BinCompleted, CountUpdate
from edge_app.publish.messages import NEVER_DROP, MessageBuilder, OutboundMessage

log = logging.getLogger(__name__)

DB_NAME = "outbox.db"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    priority INTEGER NOT NULL,
    kind TEXT NOT NULL,
    retain INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
-- idempotency only matters for bins (deterministic ids); a partial index keeps the hot path (counts) cheap
CREATE UNIQUE INDEX IF NOT EXISTS messages_bin_id ON messages(id) WHERE priority >= 3;
CREATE TABLE IF NOT EXISTS counter_state (stream TEXT PRIMARY KEY, state TEXT NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


_INSERT_MESSAGE = ("INSERT OR IGNORE INTO messages (id, topic, payload, priority, kind, retain, created) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)")
_UPSERT_STATE = "INSERT OR REPLACE INTO counter_state VALUES (?, ?, ?)"


class OutboxError(EdgeAppError):
    """The outbox cannot store a message."""


class OutboxFullError(OutboxError):
    """The disk (or the DB's page limit) is full even after dropping every droppable message."""


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    seq: int
    id: str
    topic: str
    payload: bytes
    retain: bool


class Outbox:
    """SQLite-backed FIFO of outgoing messages plus the counters' state; thread-safe (one lock)."""

    def __init__(self, path: Path, *, site: str = "site-1", prefix: str = "edge-app",
                 alias_template: str = "/{site}/{line}/{measurement}", max_bytes: int = 256 * 2**20,
                 synchronous: Literal["normal", "full"] = "normal",
                 on_corrupt: Literal["quarantine", "fail"] = "quarantine") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_bytes)
        self._synchronous = synchronous
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._reader: sqlite3.Connection | None = None
        self.recovery: dict | None = None
        """Set when a corrupt DB was quarantined at open: where it went and what was salvaged."""
        try:
            self._conn = self._connect()
        except sqlite3.DatabaseError as exc:
            if on_corrupt == "fail":
                raise EdgeAppError(f"{self.path}: outbox/state DB is corrupt ({exc}); move it aside or set "
                                   "outbox.on_corrupt: quarantine") from None
            self._conn = self._quarantine_and_recover(str(exc))
        self.epoch = self._meta("epoch") or ""
        self.builder = MessageBuilder(site, prefix, self.epoch, alias_template)
        self._bytes, self._depth = self._conn.execute(
            "SELECT COALESCE(SUM(LENGTH(payload)), 0), COUNT(*) FROM messages").fetchone()
        self.dropped_total = int(self._meta("dropped_total") or 0)
        if self.recovery:
            alarm = self.builder.alarm("state_db_corrupt", f"outbox/state DB was corrupt; moved to "
                                       f"{self.recovery['moved_to']}; salvaged what was readable", time.time(),
                                       **{k: v for k, v in self.recovery.items() if k != "error"})
            self._write([alarm], {})

    @classmethod
    def from_config(cls, cfg: object) -> Outbox:
        """Open ``<state_dir>/outbox.db`` with the `AppConfig`'s site, topic prefix and outbox settings."""
        oc = cfg.outbox  # type: ignore[attr-defined]
        return cls(Path(cfg.state_dir) / DB_NAME, site=cfg.site, prefix=cfg.mqtt.topic_prefix,  # type: ignore[attr-defined]
                   alias_template=cfg.sitewise.alias_template, max_bytes=int(oc.max_mb * 2**20),  # type: ignore[attr-defined]
                   synchronous=oc.synchronous, on_corrupt=oc.on_corrupt)

    # ---------------------------------------------------------------- opening / recovery
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise sqlite3.DatabaseError(f"cannot switch to WAL mode (got {mode})")
            conn.execute(f"PRAGMA synchronous={self._synchronous.upper()}")
            conn.execute("PRAGMA temp_store=MEMORY")
            check = conn.execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                raise sqlite3.DatabaseError(f"integrity check failed: {check[0][0]}")
            conn.executescript(_SCHEMA)
            if conn.execute("SELECT value FROM meta WHERE key='epoch'").fetchone() is None:
                conn.execute("INSERT INTO meta VALUES ('epoch', ?)", (_utc_stamp(),))
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def _quarantine_and_recover(self, error: str) -> sqlite3.Connection:
        target = self.path.parent / f"corrupt-{_utc_stamp()}"
        target.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            src = self.path.with_name(self.path.name + suffix)
            if src.exists():
                shutil.move(str(src), target / src.name)
        log.error("%s: outbox/state DB is corrupt (%s); moved to %s, starting fresh", self.path, error, target)
        salvaged = _salvage(target / self.path.name)
        conn = self._connect()
        with _transaction(conn):
            if salvaged["epoch"]:
                conn.execute("UPDATE meta SET value=? WHERE key='epoch'", (salvaged["epoch"],))
            for stream, state in salvaged["states"]:
                conn.execute("INSERT OR REPLACE INTO counter_state VALUES (?, ?, ?)", (stream, state, time.time()))
            for row in salvaged["messages"]:
                conn.execute("INSERT OR IGNORE INTO messages (id, topic, payload, priority, kind, retain, created) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)", row)
        self.recovery = {"error": error, "moved_to": str(target), "salvaged_states": len(salvaged["states"]),
                         "salvaged_messages": len(salvaged["messages"])}
        return conn

    # ---------------------------------------------------------------- writing
    def commit(self, events: Sequence[object],
               counter_states: Mapping[str, dict] | None = None) -> list[QueuedMessage]:
        """Store events (or ready `OutboundMessage`s) and counter states atomically, in one transaction.

        Raises `OutboxFullError` when the disk is full even after dropping droppable messages; nothing of
        this call is stored then (all or nothing), so the caller can retry the same batch later.
        Returns the rows stored (with their ``seq``), so a caught-up drainer can send them at once.
        """
        messages = [e if type(e) is OutboundMessage else self._build(e) for e in events]
        return self._write(messages, counter_states or {})

    def _build(self, event: object) -> OutboundMessage:
        if not isinstance(event, CountUpdate | BinCompleted | AnomalyResult):
            raise TypeError(f"cannot queue {type(event).__name__}")
        return self.builder.for_event(event)

    def _write(self, messages: Sequence[OutboundMessage], states: Mapping[str, dict]) -> list[QueuedMessage]:
        now = time.time()
        state_rows = [(stream, json.dumps(state, separators=(",", ":")), now) for stream, state in states.items()]
        with self._lock:
            for attempt in (1, 2):
                try:
                    conn = self._conn
                    conn.execute("BEGIN IMMEDIATE")
                    stored: list[QueuedMessage] = []
                    try:
                        added = self._insert(messages, state_rows, stored)
                        if self._bytes + added > self.max_bytes:
                            added -= self._drop_droppable(self._bytes + added - int(self.max_bytes * 0.9))
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
                    self._bytes += added
                    return stored
                except sqlite3.DatabaseError as exc:  # disk full, I/O error, corruption found at run time
                    try:
                        self._refresh_totals()
                    except sqlite3.DatabaseError:
                        pass
                    if getattr(exc, "sqlite_errorname", "") != "SQLITE_FULL":
                        raise OutboxError(f"{self.path}: cannot write the outbox: {exc}") from exc
                    if attempt == 2 or not self._free_space():
                        raise OutboxFullError(f"{self.path}: disk full: {exc}") from exc
        raise AssertionError("unreachable")

    def _insert(self, messages: Sequence[OutboundMessage], state_rows: list[tuple],
                stored: list[QueuedMessage] | None = None) -> int:
        added = 0
        now = time.time()
        execute = self._conn.execute
        for m in messages:
            cur = execute(_INSERT_MESSAGE, (m.id, m.topic, m.payload, m.priority, m.kind, m.retain, now))
            if cur.rowcount:
                added += len(m.payload)
                self._depth += 1
                if stored is not None:
                    stored.append(QueuedMessage(cur.lastrowid, m.id, m.topic, m.payload, m.retain))  # type: ignore[arg-type]
        for row in state_rows:
            execute(_UPSERT_STATE, row)
        return added

    def _drop_droppable(self, to_free: int) -> int:
        """Delete oldest lowest-priority rows until ``to_free`` bytes are gone; returns bytes freed."""
        freed = dropped = 0
        for priority in range(NEVER_DROP):
            while freed < to_free:
                rows = self._conn.execute(
                    "SELECT seq, LENGTH(payload) FROM messages WHERE priority=? AND kind != 'alarm' "
                    "ORDER BY seq LIMIT 500", (priority,)).fetchall()
                if not rows:
                    break
                chosen = []
                for seq, size in rows:
                    chosen.append(seq)
                    freed += size
                    if freed >= to_free:
                        break
                self._conn.executemany("DELETE FROM messages WHERE seq=?", [(s,) for s in chosen])
                dropped += len(chosen)
        if dropped:
            self._depth -= dropped
            self.dropped_total += dropped
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('dropped_total', ?)", (str(self.dropped_total),))
            self._upsert_full_alarm(dropped)
            log.warning("outbox full: dropped %d oldest telemetry/count messages (%d in total)", dropped,
                        self.dropped_total)
        return freed

    def _upsert_full_alarm(self, dropped_now: int) -> None:
        """One pending ``outbox_full`` alarm at a time: updated in place while it waits to be sent."""
        alarm = self.builder.alarm("outbox_full", "outbox reached its size cap; oldest telemetry/count messages "
                                   "were dropped (bins are never dropped)", time.time(),
                                   dropped_total=self.dropped_total, dropped_now=dropped_now,
                                   max_bytes=self.max_bytes)
        row = self._conn.execute("SELECT seq FROM messages WHERE kind='alarm' AND id LIKE ? "
                                 "ORDER BY seq DESC LIMIT 1", ("%/alarm/outbox_full/%",)).fetchone()
        if row:
            self._conn.execute("UPDATE messages SET payload=? WHERE seq=?", (alarm.payload, row[0]))
        else:
            self._insert([alarm], [])

    def _free_space(self) -> bool:
        """After SQLITE_FULL: drop half of the droppable backlog (oldest first); True if anything went."""
        try:
            with _transaction(self._conn):
                (droppable,) = self._conn.execute(
                    "SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM messages WHERE priority < ? AND kind != 'alarm'",
                    (NEVER_DROP,)).fetchone()
                freed = self._drop_droppable(max(1, droppable // 2)) if droppable else 0
            self._refresh_totals()
            return freed > 0
        except sqlite3.OperationalError:
            self._refresh_totals()
            return False

    def _refresh_totals(self) -> None:
        self._bytes, self._depth = self._conn.execute(
            "SELECT COALESCE(SUM(LENGTH(payload)), 0), COUNT(*) FROM messages").fetchone()
        self.dropped_total = int(self._meta("dropped_total") or 0)

    # ---------------------------------------------------------------- draining
    def fetch_after(self, seq: int, limit: int) -> list[QueuedMessage]:
        """The next ``limit`` queued messages with ``seq`` greater than the given one, oldest first.

        Uses its own read connection: in WAL mode a reader never blocks the writer, so the drainer fetching
        a window of messages never delays `commit` (one shared connection would serialise them).
        """
        with self._read_lock:
            if self._reader is None:
                self._reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            rows = self._reader.execute("SELECT seq, id, topic, payload, retain FROM messages WHERE seq > ? "
                                      "ORDER BY seq LIMIT ?", (seq, limit)).fetchall()
        return [QueuedMessage(s, i, t, bytes(p), bool(r)) for s, i, t, p, r in rows]

    def ack(self, seqs: Iterable[int]) -> None:
        """Delete acknowledged messages (one transaction for the whole batch)."""
        keys = [(s,) for s in seqs]
        if not keys:
            return
        with self._lock:
            with _transaction(self._conn):
                placeholders = ",".join("?" * len(keys))
                sizes = self._conn.execute(f"DELETE FROM messages WHERE seq IN ({placeholders}) "
                                           "RETURNING LENGTH(payload)", [k[0] for k in keys]).fetchall()
            self._depth -= len(sizes)
            self._bytes -= sum(size for (size,) in sizes)

    # ---------------------------------------------------------------- state and stats
    def load_counter_states(self) -> dict[str, dict]:
        """The last committed state of every counter, by stream name."""
        with self._lock:
            rows = self._conn.execute("SELECT stream, state FROM counter_state").fetchall()
        return {stream: json.loads(state) for stream, state in rows}

    @property
    def depth(self) -> int:
        return self._depth

    def stats(self) -> dict:
        with self._lock:
            row = self._conn.execute("SELECT created FROM messages ORDER BY seq LIMIT 1").fetchone()
        oldest = row[0] if row else None
        return {"depth": self._depth, "bytes": self._bytes, "max_bytes": self.max_bytes,
                "dropped_total": self.dropped_total,
                "oldest_age_s": round(time.time() - oldest, 3) if oldest else 0.0}

    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        with self._lock:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            self._conn.close()


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): the write lock is taken up front."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


def _utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def _salvage(path: Path) -> dict:
    """Best effort: read whatever tables are still readable from a quarantined DB."""
    out: dict = {"epoch": None, "states": [], "messages": []}
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return out
    queries = {
        "epoch": "SELECT value FROM meta WHERE key='epoch'",
        "states": "SELECT stream, state FROM counter_state",
        "messages": "SELECT id, topic, payload, priority, kind, retain, created FROM messages ORDER BY seq",
    }
    for key, sql in queries.items():
        try:
            rows = conn.execute(sql).fetchall()
        except sqlite3.Error:
            continue
        if key == "epoch":
            out["epoch"] = rows[0][0] if rows else None
        elif key == "states":
            out["states"] = [(s, st) for s, st in rows if _is_json(st)]
        else:
            out["messages"] = rows
    conn.close()
    return out


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except (TypeError, ValueError):
        return False

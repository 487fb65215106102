"""Durable outbox: order, ack, atomic counter state, bounded size policy, disk full, corrupt DB."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from edge_app.errors import EdgeAppError
from edge_app.events import BinCompleted, CountUpdate
from edge_app.publish.outbox import Outbox, OutboxFullError


def _bin(stream: str, bin_id: int, trays: int = 24) -> BinCompleted:
    return BinCompleted(stream=stream, line=stream, bin_id=bin_id, trays=trays, start_t=bin_id * 10.0,
                        end_t=bin_id * 10.0 + 9, global_count=bin_id * trays, wall_time=1_700_000_000.0 + bin_id)


def _count(stream: str, i: int) -> CountUpdate:
    return CountUpdate(stream=stream, line=stream, t=float(i), local=i % 24, global_count=i, bins_completed=i // 24,
                       bin_id=i // 24 + 1, wall_time=1_700_000_000.0 + i)


def _kinds(outbox: Outbox) -> list[str]:
    return [json.loads(m.payload)["type"] for m in outbox.fetch_after(0, 100_000)]


def test_messages_come_out_in_commit_order_and_leave_only_when_acked(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", site="s", prefix="p")
    ob.commit([_count("a", 1), _bin("a", 1), _count("b", 2)], {"a": {"n": 1}})
    ob.commit([_count("a", 3)], {})
    rows = ob.fetch_after(0, 10)
    assert [r.topic for r in rows] == ["p/a/count", "p/a/bin", "p/b/count", "p/a/count"]
    assert [r.seq for r in rows] == sorted(r.seq for r in rows)
    assert ob.depth == 4
    ob.ack([rows[0].seq, rows[1].seq])
    assert [r.seq for r in ob.fetch_after(0, 10)] == [rows[2].seq, rows[3].seq]
    assert ob.depth == 2 and ob.stats()["bytes"] == len(rows[2].payload) + len(rows[3].payload)


def test_events_and_counter_state_survive_reopen_together(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    ob.commit([_bin("a", 1)], {"a": {"bin_id": 2, "global": 24}})
    ob.commit([_bin("a", 2)], {"a": {"bin_id": 3, "global": 48}})
    epoch = ob.epoch
    ob.close()
    again = Outbox(tmp_path / "o.db")
    assert again.load_counter_states() == {"a": {"bin_id": 3, "global": 48}}
    assert again.depth == 2 and again.epoch == epoch
    ids = [json.loads(m.payload)["id"] for m in again.fetch_after(0, 10)]
    assert ids == [f"site-1/a/bin/{epoch}/1", f"site-1/a/bin/{epoch}/2"]


def test_recommitting_an_undelivered_bin_is_a_no_op(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    ob.commit([_bin("a", 5)], {})
    ob.commit([_bin("a", 5)], {})
    assert ob.depth == 1


def test_size_cap_drops_oldest_counts_never_bins_and_raises_one_alarm(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", max_bytes=40_000)
    for i in range(400):
        events: list = [_count("a", i)]
        if i % 40 == 39:
            events.append(_bin("a", i // 40 + 1))
        ob.commit(events, {"a": {"i": i}})
    payloads = [json.loads(m.payload) for m in ob.fetch_after(0, 100_000)]
    bins = [p["bin_id"] for p in payloads if p["type"] == "bin"]
    counts = [p["t"] for p in payloads if p["type"] == "count"]
    alarms = [p for p in payloads if p["type"] == "alarm"]
    assert bins == list(range(1, 11))
    assert counts and counts == sorted(counts) and counts[0] > 0 and counts[-1] == 399.0  # oldest went first
    assert ob.dropped_total == 400 - len(counts)
    assert len(alarms) == 1 and alarms[0]["code"] == "outbox_full"
    assert alarms[0]["dropped_total"] == ob.dropped_total
    assert ob.stats()["bytes"] <= 40_000
    assert ob.load_counter_states() == {"a": {"i": 399}}


def test_disk_full_is_all_or_nothing_and_frees_droppable_space_first(tmp_path: Path) -> None:
    """SQLITE_FULL simulated with ``max_page_count``: exactly what SQLite reports on a full disk."""
    ob = Outbox(tmp_path / "o.db", max_bytes=10**9)
    ob.commit([_count("a", i) for i in range(200)], {"a": {"i": 0}})
    pages = ob._conn.execute("PRAGMA page_count").fetchone()[0]
    ob._conn.execute(f"PRAGMA max_page_count={pages}")
    # counts keep going in: the oldest counts are dropped to make room
    for i in range(200, 400):
        ob.commit([_count("a", i)], {"a": {"i": i}})
    assert ob.dropped_total > 0 and ob.load_counter_states() == {"a": {"i": 399}}
    # bins only: eventually nothing droppable is left and the commit fails as a whole
    with pytest.raises(OutboxFullError):
        for b in range(1, 10_000):
            ob.commit([_bin("a", b)], {"a": {"bin": b}})
    last_ok = ob.load_counter_states()["a"]["bin"]
    bins = [json.loads(m.payload)["bin_id"] for m in ob.fetch_after(0, 100_000)
            if json.loads(m.payload)["type"] == "bin"]
    assert bins == list(range(1, last_ok + 1))  # the failed bin and its state are both absent


def test_garbage_db_is_quarantined_with_an_alarm(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    db.write_bytes(b"this is not a database" * 100)
    ob = Outbox(db)
    assert ob.recovery is not None
    moved = Path(ob.recovery["moved_to"]) / "outbox.db"
    assert moved.read_bytes().startswith(b"this is not")
    alarms = [json.loads(m.payload) for m in ob.fetch_after(0, 10)]
    assert [a["code"] for a in alarms] == ["state_db_corrupt"]
    ob.commit([_bin("a", 1)], {"a": {"x": 1}})
    assert ob.load_counter_states() == {"a": {"x": 1}}


def test_corrupt_db_with_fail_policy_is_one_line_error(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    db.write_bytes(b"\0garbage" * 1000)
    with pytest.raises(EdgeAppError) as err:
        Outbox(db, on_corrupt="fail")
    assert "corrupt" in str(err.value) and "\n" not in str(err.value) and str(db) in str(err.value)


def test_partially_corrupt_db_salvages_counter_state(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    ob = Outbox(db)
    ob.commit([_bin("a", 1)], {"a": {"bin_id": 2, "global": 24}})
    ob.commit([_count("a", i) for i in range(3000)], {})
    epoch = ob.epoch
    ob.close()
    # smash pages in the middle of the file (message rows / index), leave the schema and small tables
    data = bytearray(db.read_bytes())
    page = 4096
    n_pages = len(data) // page
    for p in range(n_pages // 2, n_pages // 2 + 5):
        data[p * page:(p + 1) * page] = b"\xff" * page
    db.write_bytes(bytes(data))
    assert not _passes_quick_check(db)
    again = Outbox(db)
    assert again.recovery is not None and again.recovery["salvaged_states"] == 1
    assert again.load_counter_states() == {"a": {"bin_id": 2, "global": 24}}
    assert again.epoch == epoch  # same state lineage: bin ids stay comparable


def _passes_quick_check(db: Path) -> bool:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    except sqlite3.DatabaseError:
        return False
    finally:
        conn.close()


class _FakeLink:
    """A transport stub: records what is sent, in order; tokens are the seqs."""

    def __init__(self) -> None:
        self.up = False
        self.sent: list[int] = []

    def send(self, message) -> int:  # noqa: ANN001
        self.sent.append(message.seq)
        return message.seq


def _drainer(ob: Outbox, link: _FakeLink, window: int = 1000):  # noqa: ANN202
    from edge_app.publish.drain import OutboxDrainer

    d = OutboxDrainer(ob, link.send, ready=lambda: link.up, window=window)
    d.start()
    return d


def _wait(pred, timeout: float = 5.0) -> bool:  # noqa: ANN001
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not pred():
        time.sleep(0.01)
    return pred()


def test_fast_path_never_overtakes_a_backlog(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    link = _FakeLink()
    d = _drainer(ob, link)
    backlog = [r.seq for i in range(50) for r in ob.commit([_count("a", i)], {})]  # link down: queued only
    link.up = True
    fresh = ob.commit([_bin("a", 1)], {})
    d.offer(fresh)  # must not be sent ahead of the 50 older rows
    assert _wait(lambda: len(link.sent) == 51)
    assert link.sent == backlog + [fresh[0].seq]
    more = ob.commit([_bin("a", 2)], {})
    d.offer(more)  # caught up now: sent by the committing thread itself
    assert link.sent[-1] == more[0].seq
    for seq in link.sent:
        d.ack(seq)
    assert d.flush(5) and ob.depth == 0
    d.stop()


def test_failed_publish_is_sent_again_and_only_acks_delete(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    link = _FakeLink()
    link.up = True
    d = _drainer(ob, link)
    rows = [r.seq for b in range(1, 6) for r in ob.commit([_bin("a", b)], {})]
    d.wake()
    assert _wait(lambda: len(link.sent) == 5)
    d.ack(rows[0])
    d.ack(rows[1])
    d.nack(rows[2])  # e.g. an awscrt publish future that failed
    assert _wait(lambda: link.sent.count(rows[2]) == 2)
    for seq in rows[2:]:
        d.ack(seq)
    assert d.flush(5) and ob.depth == 0
    assert link.sent[:5] == rows and link.sent[5] == rows[2]  # the failed one, then in order
    d.stop()

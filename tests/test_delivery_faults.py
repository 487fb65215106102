"""Fault tests: broker outage, kill -9 of the publishing process, both at once, disk full, corrupt state.

After each, a QoS 1 subscriber must see every bin exactly once after de-duplication by message id, and the
totals must equal the truth (the driver's deterministic trays per bin). The driver (``delivery_driver.py``)
commits bins and counter state through the real `EventPublisher`, like the app does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from delivery_driver import LINES, trays
from delivery_helpers import DRIVER, Collector, make_cfg, persistent_broker, wait_until

from edge_app.events import BinCompleted, CountUpdate
from edge_app.publish import EventPublisher
from edge_app.publish.outbox import Outbox

N_BINS = 150


class Driver:
    """The driver process plus a thread reading its progress lines."""

    def __init__(self, state_dir: Path, host: str, port: int, n_bins: int = N_BINS, interval: float = 0.01) -> None:
        self.proc = subprocess.Popen([sys.executable, str(DRIVER), str(state_dir), host, str(port), str(n_bins),
                                      str(interval)], stdout=subprocess.PIPE, text=True)
        self.committed = 0
        self.done = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("bin "):
                self.committed += 1
            elif line.startswith("DONE"):
                self.done.set()

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _check_exactly_once(sub: Collector, n_bins: int = N_BINS) -> dict:
    bins = sub.unique_bins()
    by_line: dict[str, list[dict]] = defaultdict(list)
    for p in bins.values():
        by_line[p["line"]].append(p)
    for line in LINES:
        got = sorted(by_line[line], key=lambda p: p["bin_id"])
        assert [p["bin_id"] for p in got] == list(range(1, n_bins + 1)), f"{line}: lost or double-counted bins"
        truth = sum(trays(k) for k in range(1, n_bins + 1))
        assert sum(p["trays"] for p in got) == truth
        assert got[-1]["global"] == truth
        first_seen = []
        for p in sub.of_type("bin"):
            if p["line"] == line and p["bin_id"] not in first_seen:
                first_seen.append(p["bin_id"])
        assert first_seen == sorted(first_seen), f"{line}: per-topic order broken"
    return {"received": len(sub.of_type("bin")), "unique": len(bins)}


@pytest.fixture
def pbroker(tmp_path: Path):
    b = persistent_broker(tmp_path)
    b.start()
    yield b
    b.stop()


def _all_arrived(sub: Collector) -> bool:
    return len(sub.unique_bins()) >= N_BINS * len(LINES)


def test_broker_outage_mid_run(pbroker, tmp_path: Path) -> None:
    sub = Collector(pbroker.host, pbroker.port, "t/#")
    drv = Driver(tmp_path / "state", pbroker.host, pbroker.port)
    assert wait_until(lambda: drv.committed >= 60, 20)
    pbroker.stop()
    at_stop = drv.committed
    assert wait_until(lambda: drv.committed >= at_stop + 60, 20), "counting must go on while the broker is down"
    time.sleep(1.0)
    pbroker.start()
    assert drv.done.wait(60)
    assert wait_until(lambda: _all_arrived(sub), 20)
    _check_exactly_once(sub)
    sub.close()


def test_kill_9_mid_run_and_restart(pbroker, tmp_path: Path) -> None:
    sub = Collector(pbroker.host, pbroker.port, "t/#")
    drv = Driver(tmp_path / "state", pbroker.host, pbroker.port)
    assert wait_until(lambda: drv.committed >= 90, 20)
    drv.kill9()
    again = Driver(tmp_path / "state", pbroker.host, pbroker.port)
    assert again.done.wait(60)
    assert wait_until(lambda: _all_arrived(sub), 20)
    _check_exactly_once(sub)
    sub.close()


def test_broker_outage_and_kill_9_at_once(pbroker, tmp_path: Path) -> None:
    sub = Collector(pbroker.host, pbroker.port, "t/#")
    drv = Driver(tmp_path / "state", pbroker.host, pbroker.port)
    assert wait_until(lambda: drv.committed >= 60, 20)
    pbroker.stop()
    assert wait_until(lambda: drv.committed >= 120, 20)
    drv.kill9()  # dies with undelivered bins in its outbox
    again = Driver(tmp_path / "state", pbroker.host, pbroker.port)
    assert wait_until(lambda: again.committed >= 30, 20)  # restarted while the broker is still down
    pbroker.start()
    assert again.done.wait(60)
    assert wait_until(lambda: _all_arrived(sub), 20)
    _check_exactly_once(sub)
    sub.close()


class _NullTransport:
    """Never connected: messages stay in the outbox (lets a test own the drain)."""

    def start(self) -> None: ...
    def wake(self) -> None: ...
    def offer(self, rows: list) -> None: ...
    def stop(self, timeout: float) -> bool:
        return False

    def state(self) -> dict:
        return {"transport": "null", "connected": False}


def test_disk_full_keeps_bins_in_memory_then_stores_them_with_an_alarm(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, "127.0.0.1", 1)
    pub = EventPublisher(cfg, transport=_NullTransport())
    conn = pub.outbox._conn  # simulate a full disk: SQLite reports SQLITE_FULL exactly as on a real one
    pub.commit([BinCompleted(stream="line-1", line="line-1", bin_id=1, trays=1, start_t=0, end_t=1, global_count=1)],
               {"line-1": {"next_bin": 2}})
    conn.execute(f"PRAGMA max_page_count={conn.execute('PRAGMA page_count').fetchone()[0]}")
    k = 1
    while not pub.disk_full:
        k += 1
        pub.commit([BinCompleted(stream="line-1", line="line-1", bin_id=k, trays=1, start_t=0, end_t=1,
                                 global_count=k)], {"line-1": {"next_bin": k + 1}})
        assert k < 20_000
    for j in range(k + 1, k + 6):  # counting goes on; nothing raises
        pub.commit([BinCompleted(stream="line-1", line="line-1", bin_id=j, trays=1, start_t=0, end_t=1,
                                 global_count=j), CountUpdate(stream="line-1", line="line-1", t=j, local=0,
                                                             global_count=j, bins_completed=j, bin_id=j + 1)],
                   {"line-1": {"next_bin": j + 1}})
    assert pub.stats()["pending_in_memory"] >= 6
    conn.execute("PRAGMA max_page_count=1000000")  # space frees up
    pub.commit([], {})
    assert not pub.disk_full
    payloads = [json.loads(m.payload) for m in pub.outbox.fetch_after(0, 100_000)]
    assert [p["bin_id"] for p in payloads if p["type"] == "bin"] == list(range(1, k + 6))
    assert [p["code"] for p in payloads if p["type"] == "alarm"] == ["disk_full_recovered"]
    assert pub.restore_counter_states() == {"line-1": {"next_bin": k + 6}}
    pub.stop(0)


def test_corrupt_state_db_restarts_fresh_and_publishes_an_alarm(broker, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "outbox.db").write_bytes(b"\x13\x37 not sqlite" * 512)
    sub = Collector(broker.host, broker.port, "t/#")
    pub = EventPublisher(make_cfg(state, broker.host, broker.port))
    assert pub.restore_counter_states() == {}
    pub.start()
    assert wait_until(lambda: bool(sub.of_type("alarm")), 10)
    pub.stop(5)
    alarm, = sub.of_type("alarm")
    assert alarm["code"] == "state_db_corrupt" and "corrupt-" in alarm["moved_to"]
    assert list(state.glob("corrupt-*/outbox.db"))
    assert Outbox(state / "outbox.db").recovery is None  # the fresh DB is healthy
    sub.close()

"""`edge-app bench outbox`: the durable outbox vs plain paho QoS 1 publishing, and a 1-hour backlog drain.

All against a local mosquitto this command starts on a free port, in one run:

1. baseline: plain paho, QoS 1, same in-flight window: build each count message (same JSON builder) and
   publish it, until every PUBACK is in (what a publisher without durability costs);
2. outbox: the same N messages as `CountUpdate` events through `EventPublisher.commit` (one commit each, as
   the app does), until the outbox is empty (every message stored, sent, acknowledged and deleted);
3. backlog: an outbox pre-filled with 1 hour of 4 lines while the broker was "down" (1 count/s/line, one
   bin per 2 minutes per line, a heartbeat every 10 s with fps per line), then the time to drain it.

Targets (issue 6): outbox cost < 2x plain publishing; 1-hour backlog of 4 lines drained in < 60 s.
"Cost" is shown two ways, each with its verdict: wall time per message, and CPU time per message
(``process_time``: all threads of this process, the broker excluded for both), which is steadier on a
shared machine. The outbox's floor is one SQLite transaction per commit (~40-60 us CPU here): the price
of every commit surviving ``kill -9``.
"""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated

import typer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_mosquitto(folder: Path) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = _free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n", encoding="utf-8")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start")


def _plain_paho(port: int, events: list, window: int) -> tuple[float, float]:
    """What a publisher without durability does: build each message, publish QoS 1, wait for all PUBACKs."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from edge_app.publish.messages import MessageBuilder

    done = threading.Event()
    acked = [0]

    def on_publish(*args: object) -> None:
        acked[0] += 1
        if acked[0] == len(events):
            done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-plain")
    client.max_inflight_messages_set(window)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    builder = MessageBuilder("bench", "bench/plain")
    t0, c0 = time.perf_counter(), time.process_time()
    for e in events:
        m = builder.for_event(e)
        client.publish(m.topic, m.payload, qos=1)
    done.wait(300)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    client.disconnect()
    client.loop_stop()
    return elapsed, cpu


def _through_outbox(folder: Path, port: int, events: list, window: int, synchronous: str) -> tuple[float, float, float]:
    """(wall s, CPU s, commit-only wall s) for events committed one by one until the outbox is empty."""
    from edge_app.publish import EventPublisher

    pub = EventPublisher(_cfg(folder, port, window, synchronous))
    pub.start()
    pub.transport.wait_connected(10)  # type: ignore[union-attr]
    t0, c0 = time.perf_counter(), time.process_time()
    for e in events:
        pub.commit([e], {"line-1": {"global": e.global_count}})
    commit_s = time.perf_counter() - t0
    _wait_empty(pub, 300)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    pub.stop(5)
    return elapsed, cpu, commit_s


def _cfg(state: Path, port: int, window: int, synchronous: str):  # noqa: ANN202
    from edge_app.config import AppConfig

    return AppConfig.model_validate({
        "site": "bench", "state_dir": str(state), "model": {"path": "unused.onnx"},
        "streams": [{"name": f"line-{i}", "uri": "x.mp4"} for i in range(1, 5)],
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": "bench/outbox", "client_id": f"bench-{state.name}"},
        "outbox": {"inflight": window, "synchronous": synchronous}})


def _wait_empty(publisher: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if publisher.outbox.depth == 0:  # type: ignore[attr-defined]
            return True
        time.sleep(0.002)
    return False


def outbox(
    messages: Annotated[int, typer.Option(help="Messages in the throughput comparison")] = 5000,
    window: Annotated[int, typer.Option(help="In-flight window (both paths)")] = 200,
    synchronous: Annotated[str, typer.Option(help="Outbox SQLite synchronous: normal or full")] = "normal",
    lines: Annotated[int, typer.Option(help="Lines in the backlog")] = 4,
    backlog_hours: Annotated[float, typer.Option(help="Hours of backlog")] = 1.0,
    rounds: Annotated[int, typer.Option(help="Alternating rounds of the throughput comparison")] = 3,
) -> None:
    """Outbox vs plain paho (QoS 1) msgs/s, and the drain time of a 1-hour, 4-line backlog."""
    from edge_app.events import BinCompleted, CountUpdate
    from edge_app.publish import EventPublisher

    if synchronous not in ("normal", "full"):
        from edge_app.errors import EdgeAppError

        raise EdgeAppError(f"--synchronous: expected normal or full, got {synchronous!r}")
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        folder = Path(tmp)
        broker, port = _start_mosquitto(folder)
        try:
            events = [CountUpdate(stream="line-1", line="line-1", t=float(i), local=i % 24, global_count=i,
                                  bins_completed=i // 24, bin_id=i // 24 + 1, visible=i % 24)
                      for i in range(messages)]
            plain, through = [], []
            for r in range(rounds):  # alternate, so load from other processes hits both sides alike
                plain.append(_plain_paho(port, events, window))
                through.append(_through_outbox(folder / f"throughput-{r}", port, events, window, synchronous))

            pub = EventPublisher(_cfg(folder / "backlog", port, window, synchronous))
            seconds = int(backlog_hours * 3600)
            t_fill = time.perf_counter()
            start = time.time() - seconds
            for s in range(seconds):
                batch: list = []
                for li in range(1, lines + 1):
                    line = f"line-{li}"
                    batch.append(CountUpdate(stream=line, line=line, t=float(s), local=s % 24, global_count=s,
                                             bins_completed=s // 120, bin_id=s // 120 + 1, wall_time=start + s))
                    if s % 120 == 119:
                        batch.append(BinCompleted(stream=line, line=line, bin_id=s // 120 + 1, trays=24,
                                                  start_t=s - 119.0, end_t=float(s), global_count=24 * (s // 120 + 1),
                                                  wall_time=start + s))
                pub.commit(batch, {f"line-{li}": {"s": s} for li in range(1, lines + 1)})
                if s % 10 == 0:
                    pub.publish_health({"streams": {f"line-{li}": {"fps": 15.0} for li in range(1, lines + 1)}})
            fill_s = time.perf_counter() - t_fill
            backlog = pub.outbox.depth
            t0 = time.perf_counter()
            pub.start()
            drained = _wait_empty(pub, 600)
            drain_s = time.perf_counter() - t0
            pub.stop(5)
        finally:
            broker.terminate()
            broker.wait(5)

    plain_wall, plain_cpu = (statistics.median(x[i] for x in plain) for i in (0, 1))
    out_wall, out_cpu, commit_s = (statistics.median(x[i] for x in through) for i in (0, 1, 2))
    n = messages
    cpu_ratio, wall_ratio = out_cpu / plain_cpu, out_wall / plain_wall
    typer.echo(f"throughput: {n} count messages, QoS 1, in-flight window {window}, synchronous={synchronous}, "
               f"median of {rounds} alternating rounds")
    typer.echo(f"  {'':32s}{'msg/s':>9s}{'CPU us/msg':>12s}")
    typer.echo(f"  {'plain paho (build + publish)':32s}{n / plain_wall:9.0f}{plain_cpu / n * 1e6:12.0f}")
    typer.echo(f"  {'outbox (commit->PUBACK->delete)':32s}{n / out_wall:9.0f}{out_cpu / n * 1e6:12.0f}"
               f"   (commit() alone: {commit_s / n * 1e6:.0f} us wall)")
    typer.echo(f"  cost ratio outbox/plain: wall {wall_ratio:.2f}x ({'OK' if wall_ratio < 2 else 'MISSED'}), "
               f"CPU {cpu_ratio:.2f}x ({'OK' if cpu_ratio < 2 else 'MISSED'})   target < 2x")
    typer.echo(f"backlog: {backlog_hours:g} h x {lines} lines = {backlog} messages queued while offline "
               f"(filled in {fill_s:.1f} s)")
    typer.echo(f"  drained in {drain_s:.2f} s ({backlog / drain_s:.0f} msg/s)   target < 60 s  "
               f"{'OK' if drained and drain_s < 60 else 'MISSED'}")

"""MQTT publisher against a real mosquitto: topics, payloads, status/last will, health, broker down."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_broker
from delivery_helpers import DRIVER, Collector, make_cfg, wait_until

from edge_app.events import AnomalyResult, BinCompleted, CountUpdate
from edge_app.publish import EventPublisher

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _events(line: str = "line-1") -> list:
    return [
        CountUpdate(stream=line, line=line, t=1.0, local=3, global_count=24, bins_completed=1, bin_id=2, visible=3,
                    wall_time=1_700_000_000.25),
        BinCompleted(stream=line, line=line, bin_id=2, trays=23, start_t=1.0, end_t=9.0, global_count=47,
                     wall_time=1_700_000_009.5),
        AnomalyResult(stream=line, line=line, t=9.0, score=0.75, is_anomalous=True, area_percent=1.5,
                      wall_time=1_700_000_009.0),
    ]


def test_events_reach_the_broker_with_documented_topics_and_payloads(broker, tmp_path: Path) -> None:
    sub = Collector(broker.host, broker.port, "t/#")
    pub = EventPublisher(make_cfg(tmp_path, broker.host, broker.port))
    pub.start()
    pub.commit(_events(), {"line-1": {"next_bin": 3}})
    assert wait_until(lambda: len(sub.of_type("bin")) == 1 and len(sub.of_type("anomaly")) == 1, 10)
    assert pub.stop(timeout=5) is True
    topics = {t for t, _, _ in sub.messages}
    assert {"t/line-1/count", "t/line-1/bin", "t/line-1/anomaly", "t/status"} <= topics
    count, = sub.of_type("count")
    binmsg, = sub.of_type("bin")
    anomaly, = sub.of_type("anomaly")
    for p in (count, binmsg, anomaly):
        assert p["schema_version"] == 1 and ISO.match(p["timestamp"]) and p["site"] == "plant"
    assert count["timestamp"] == "2023-11-14T22:13:20.250Z"
    assert (count["local"], count["global"], count["bins_completed"]) == (3, 24, 1)
    assert count["sitewise"]["trays_in_bin"] == {
        "propertyAlias": "/plant/line-1/trays_in_bin", "timestamp": {"timeInSeconds": 1_700_000_000,
                                                                     "offsetInNanos": 250_000_000},
        "quality": "GOOD", "value": {"integerValue": 3}}
    assert binmsg["id"].startswith("plant/line-1/bin/") and binmsg["id"].endswith("/2")
    assert (binmsg["trays"], binmsg["global"]) == (23, 47)
    assert binmsg["sitewise"]["trays_total"]["value"] == {"integerValue": 47}
    assert anomaly["sitewise"]["anomaly_score"]["value"] == {"doubleValue": 0.75}
    states = [p["state"] for p in sub.of_type("status")]
    assert states[0] == "online" and states[-1] == "offline"  # clean stop says offline itself
    sub.close()


def test_status_is_retained_online_then_last_will_offline_on_kill(broker, tmp_path: Path) -> None:
    watch = Collector(broker.host, broker.port, "t/status", client_id="watch")
    proc = subprocess.Popen([sys.executable, str(DRIVER), str(tmp_path / "s"), broker.host, str(broker.port), "100000",
                             "0.05"], stdout=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: any(p.get("state") == "online" for _, p, _ in watch.messages), 10)
        late = Collector(broker.host, broker.port, "t/status", client_id="late")  # joins after the connect
        assert wait_until(lambda: bool(late.messages), 5)
        assert late.messages[0][1]["state"] == "online" and late.messages[0][2] is True  # retained
        proc.kill()  # SIGKILL: no clean disconnect, the broker must publish the will
        proc.wait()
        assert wait_until(lambda: any(p.get("state") == "offline" for _, p, _ in late.messages), 15)
        again = Collector(broker.host, broker.port, "t/status", client_id="again")
        assert wait_until(lambda: bool(again.messages), 5)
        assert again.messages[-1][1]["state"] == "offline" and again.messages[-1][2] is True  # retained
        for c in (watch, late, again):
            c.close()
    finally:
        proc.kill()


def test_broker_down_never_blocks_commit_and_everything_arrives_later(tmp_path: Path) -> None:
    broker = make_broker(tmp_path)  # not started
    pub = EventPublisher(make_cfg(tmp_path / "state", broker.host, broker.port))
    pub.start()
    for k in range(1, 201):  # the broker is down: each commit returns at once, nothing waits on the network
        pub.commit([BinCompleted(stream="line-1", line="line-1", bin_id=k, trays=1, start_t=0, end_t=1,
                                 global_count=k)], {"line-1": {"next_bin": k + 1}})
    assert pub.outbox.depth == 200 and not pub.stats()["broker"]["connected"]
    sub = None
    try:
        broker.start()
        sub = Collector(broker.host, broker.port, "t/#")  # may join late: the outbox depth is what matters here
        assert wait_until(lambda: pub.outbox.depth == 0, 20)
        assert pub.stop(timeout=5)
    finally:
        if sub:
            sub.close()
        broker.stop()


def test_health_carries_outbox_and_broker_state_and_per_line_fps(broker, tmp_path: Path) -> None:
    sub = Collector(broker.host, broker.port, "t/#")
    cfg = make_cfg(tmp_path, broker.host, broker.port, streams=("cam-a",))
    pub = EventPublisher(cfg)
    pub.start()
    assert pub.transport.wait_connected(5)  # type: ignore[union-attr]
    pub.publish_health({"uptime_s": 12.5, "model_version": "ssd-v3", "inference_latency_ms": {"p50": 8, "p95": 15},
                        "streams": {"cam-a": {"fps": 14.5, "dropped_frames": 2}}})
    assert wait_until(lambda: sub.of_type("health") and sub.of_type("telemetry"), 10)
    pub.stop(timeout=5)
    health, = sub.of_type("health")
    assert health["model_version"] == "ssd-v3" and health["inference_latency_ms"]["p95"] == 15
    assert health["broker"]["connected"] is True and health["broker"]["transport"] == "mqtt"
    assert set(health["outbox"]) >= {"depth", "bytes", "dropped_total"}
    tele, = sub.of_type("telemetry")
    assert tele["line"] == "cam-a" and tele["fps"] == 14.5
    assert tele["sitewise"]["fps"]["value"] == {"doubleValue": 14.5}
    assert tele["sitewise"]["fps"]["propertyAlias"] == "/plant/cam-a/fps"
    sub.close()


@pytest.mark.parametrize("qos_topic", ["t/line-1/bin"])
def test_per_topic_order_is_kept(broker, tmp_path: Path, qos_topic: str) -> None:
    sub = Collector(broker.host, broker.port, qos_topic)
    pub = EventPublisher(make_cfg(tmp_path, broker.host, broker.port))
    for k in range(1, 501):  # queued before start: one burst through the in-flight window
        pub.commit([BinCompleted(stream="line-1", line="line-1", bin_id=k, trays=1, start_t=0, end_t=1,
                                 global_count=k)], {})
    pub.start()
    assert wait_until(lambda: len(sub.of_type("bin")) >= 500, 20)
    pub.stop(timeout=5)
    assert [p["bin_id"] for p in sub.of_type("bin")] == list(range(1, 501))
    sub.close()


def test_bench_outbox_runs_and_prints_both_sides(tmp_path: Path) -> None:
    """A tiny run of `edge-app bench outbox` (its figures are in the README; here: it works end to end)."""
    from typer.testing import CliRunner

    from edge_app.bench.cli import app as bench_app

    res = CliRunner().invoke(bench_app, ["outbox", "--messages", "200", "--rounds", "1", "--backlog-hours", "0.02"])
    assert res.exit_code == 0, res.output
    assert "plain paho" in res.output and "outbox (commit->PUBACK->delete)" in res.output
    assert "cost ratio outbox/plain" in res.output
    assert "backlog: 0.02 h x 4 lines = " in res.output and "drained in" in res.output

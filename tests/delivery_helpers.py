"""Helpers for the delivery tests: app config, a persistent broker, a QoS 1 subscriber that de-duplicates."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
from conftest import Broker, free_port
from paho.mqtt.enums import CallbackAPIVersion

from edge_app.config import AppConfig

REPO = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).with_name("delivery_driver.py")


def make_cfg(state_dir: Path, host: str, port: int, *, streams: tuple[str, ...] = ("line-1",), prefix: str = "t",
             **extra: object) -> AppConfig:
    raw = {"site": "plant", "state_dir": str(state_dir), "model": {"path": "unused.onnx"},
           "streams": [{"name": s, "uri": f"{s}.mp4"} for s in streams],
           "mqtt": {"host": host, "port": port, "topic_prefix": prefix, "client_id": f"edge-{port}", "keepalive": 5},
           **extra}
    return AppConfig.model_validate(raw)


def persistent_broker(tmp: Path) -> Broker:
    """mosquitto that keeps sessions (and queued QoS 1 messages) across a stop/start, like a real plant broker.

    Without it a restarted broker forgets the subscriber, so messages published between the restart and the
    subscriber's re-subscription would be lost on the *consumer* side, which is not what these tests measure.
    """
    port = free_port()
    data = tmp / f"mosq-data-{port}"
    data.mkdir(parents=True)
    conf = tmp / f"mosquitto-{port}.conf"
    user = "user root\n" if os.geteuid() == 0 else ""  # as root mosquitto would drop to a user that cannot write tmp
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                    f"persistence_location {data}/\n{user}", encoding="utf-8")
    return Broker("127.0.0.1", port, conf)


class Collector:
    """A QoS 1 subscriber with a persistent session that reconnects by itself; records every message."""

    def __init__(self, host: str, port: int, topic: str, client_id: str = "collector") -> None:
        self.messages: list[tuple[str, dict, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.topic = topic
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect_async(host, port, keepalive=5)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("collector could not subscribe")

    def _on_connect(self, client: paho.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        client.subscribe(self.topic, qos=1)

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            payload = {"raw": msg.payload.decode("utf-8", "replace")}
        with self._lock:
            self.messages.append((msg.topic, payload, bool(msg.retain)))

    def of_type(self, kind: str) -> list[dict]:
        with self._lock:
            return [p for _, p, _ in self.messages if p.get("type") == kind]

    def unique_bins(self) -> dict[str, dict]:
        """Bin events de-duplicated by message id."""
        return {p["id"]: p for p in self.of_type("bin")}

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()

"""MQTT transport (paho-mqtt 2.x) draining the durable outbox.

paho runs its network loop in its own thread (``loop_start``); ``connect_async`` means a broker that is
down at start-up or later never blocks the caller: paho keeps reconnecting with exponential backoff
(1 s .. 30 s) while the app goes on counting into the outbox. A message leaves the outbox only when its
PUBACK arrives (``on_publish`` with mid tracking, `OutboxDrainer`). Messages in flight when the link
drops are re-sent by paho itself after reconnecting, in order.

Status: the last will is a retained ``offline`` on ``<prefix>/status`` (the broker publishes it if the
app dies or the link times out); a retained ``online`` is published on every (re)connect; a clean
`stop` publishes a retained ``offline`` itself, because the broker does not send the will then.
"""

from __future__ import annotations

import logging
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edge_app.config import AppConfig
from edge_app.publish.certs import check_tls_files
from edge_app.publish.drain import DrainedTransport, OutboxDrainer
from edge_app.publish.outbox import Outbox, QueuedMessage

log = logging.getLogger(__name__)


class MqttPublisher(DrainedTransport):
    name = "mqtt"

    def __init__(self, cfg: AppConfig, outbox: Outbox) -> None:
        self.cfg = cfg
        self.mqtt = cfg.mqtt
        self.outbox = outbox
        self.builder = outbox.builder
        if self.mqtt.tls:
            tls = self.mqtt.tls
            check_tls_files("mqtt.tls", ca=tls.ca_certs, cert=tls.certfile, key=tls.keyfile)
        self.connected = False
        self.connected_since: float | None = None
        self.connects = 0
        self._online = threading.Event()
        self._stopping = False
        self._link_up = False
        """TCP/MQTT session up (``connected`` additionally means: the outbox may flow, see `_on_connect`)."""
        self._online_mid: int | None = None
        self.client = self._make_client()
        self.drainer = OutboxDrainer(outbox, self._send, ready=lambda: self.connected,
                                     window=cfg.outbox.inflight, name="mqtt-outbox")

    def _make_client(self) -> paho.Client:
        m = self.mqtt
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=m.client_id, protocol=paho.MQTTv311,
                             clean_session=True)
        client.max_inflight_messages_set(self.cfg.outbox.inflight)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        if m.username:
            client.username_pw_set(m.username, m.password)
        if m.tls:
            client.tls_set(ca_certs=_str(m.tls.ca_certs), certfile=_str(m.tls.certfile), keyfile=_str(m.tls.keyfile))
            if m.tls.insecure:
                client.tls_insecure_set(True)
        client.will_set(self.builder.topics.status, self.builder.status("offline", m.client_id, time.time()),
                        qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.client.connect_async(self.mqtt.host, self.mqtt.port, keepalive=self.mqtt.keepalive)
        self.client.loop_start()
        self.drainer.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Flush what can be flushed within ``timeout``, publish ``offline``, disconnect. True if all sent."""
        flushed = self.drainer.flush(timeout)  # waits for a reconnect too: the caller's timeout bounds it
        self.drainer.stop()
        self._stopping = True
        if self.connected:
            info = self.client.publish(self.builder.topics.status,
                                       self.builder.status("offline", self.mqtt.client_id, time.time()),
                                       qos=1, retain=True)
            try:
                info.wait_for_publish(min(2.0, max(timeout, 0.1)))
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()
        return flushed

    def state(self) -> dict:
        return {"transport": self.name, "connected": self.connected, "host": self.mqtt.host, "port": self.mqtt.port,
                "connected_since": self.connected_since, "connects": self.connects,
                "inflight": self.drainer.inflight}

    # ------------------------------------------------------------------ paho callbacks (network thread)
    def _on_connect(self, client: paho.Client, userdata: object, flags: object, reason_code: object,
                    properties: object) -> None:
        """Publish the retained ``online``; the outbox starts flowing only once the broker has acked it.

        Why wait for that PUBACK: paho calls this callback *before* it re-sends what was in flight when the
        link dropped. Were the drainer released here, a new message could go out ahead of an older re-sent
        one. Both leave through the same socket from the network thread, so by the time the ``online``
        PUBACK is read the re-sends are already on the wire, ahead of anything new.
        """
        if getattr(reason_code, "is_failure", False):
            log.error("mqtt: %s:%s refused the connection: %s", self.mqtt.host, self.mqtt.port, reason_code)
            return
        self._link_up = True
        self.connects += 1
        log.info("mqtt: connected to %s:%s", self.mqtt.host, self.mqtt.port)
        info = client.publish(self.builder.topics.status,
                              self.builder.status("online", self.mqtt.client_id, time.time()), qos=1, retain=True)
        self._online_mid = info.mid

    def _on_disconnect(self, client: paho.Client, userdata: object, flags: object, reason_code: object,
                       properties: object) -> None:
        if self._link_up and not self._stopping:
            log.warning("mqtt: disconnected from %s:%s (%s); reconnecting", self.mqtt.host, self.mqtt.port,
                        reason_code)
        self._link_up = False
        self.connected = False
        self._online.clear()

    def _on_publish(self, client: paho.Client, userdata: object, mid: int, reason_code: object,
                    properties: object) -> None:
        if mid == self._online_mid and self._link_up:
            self._online_mid = None
            self.connected = True
            self.connected_since = time.time()
            self._online.set()
            self.drainer.wake()
            return
        self.drainer.ack(mid)

    # ------------------------------------------------------------------ drainer thread
    def _send(self, message: QueuedMessage) -> int | None:
        info = self.client.publish(message.topic, message.payload, qos=self.mqtt.qos, retain=message.retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            log.warning("mqtt: publish refused (%s); will retry", paho.error_string(info.rc))
            return None
        return info.mid


def _str(path: object) -> str | None:
    return None if path is None else str(path)

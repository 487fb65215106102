"""AWS IoT Core transport: mTLS through ``awsiotsdk`` (awscrt), draining the same durable outbox.

Certificates are checked at construction (`check_tls_files`): a missing, unreadable, non-PEM, expired
or mismatched certificate/key is one clear `EdgeAppError` line at start-up instead of a handshake failure
(IoT Core just closes the socket on an expired client certificate, which looks like a network fault).

``mtls_from_path`` builds an ``awscrt.mqtt.Connection``. Its first ``connect()`` is retried here with
exponential backoff (1 s .. 30 s) in a background thread, so a plant without network at start-up still
counts; once connected, the CRT reconnects by itself. Each publish returns a future that completes on
PUBACK (QoS 1): success acks the outbox row, failure re-queues it (`OutboxDrainer.nack`). The drainer
token is the outbox ``seq`` itself, so an ack is matched even after a re-send.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future

from awscrt import mqtt
from awsiot import mqtt_connection_builder

from edge_app.config import AppConfig
from edge_app.publish.certs import check_tls_files
from edge_app.publish.drain import DrainedTransport, OutboxDrainer
from edge_app.publish.outbox import Outbox, QueuedMessage

log = logging.getLogger(__name__)


class IotCorePublisher(DrainedTransport):
    name = "iot_core"

    def __init__(self, cfg: AppConfig, outbox: Outbox) -> None:
        if cfg.iot_core is None:
            raise ValueError("config has no iot_core section")
        self.iot = cfg.iot_core
        check_tls_files("iot_core", ca=self.iot.root_ca, cert=self.iot.cert, key=self.iot.key)
        self.outbox = outbox
        self.builder = outbox.builder
        self.connected = False
        self.connected_since: float | None = None
        self.connects = 0
        self.last_error: str | None = None
        self._online = threading.Event()
        self._stopping = threading.Event()
        self.connection = self._build()
        self.drainer = OutboxDrainer(outbox, self._send, ready=lambda: self.connected,
                                     window=cfg.outbox.inflight, name="iot-core-outbox")
        self._connector = threading.Thread(target=self._connect_loop, name="iot-core-connect", daemon=True)

    def _build(self) -> mqtt.Connection:
        will = mqtt.Will(topic=self.builder.topics.status, qos=mqtt.QoS.AT_LEAST_ONCE,
                         payload=self.builder.status("offline", self.iot.client_id, time.time()), retain=True)
        return mqtt_connection_builder.mtls_from_path(
            endpoint=self.iot.endpoint, port=self.iot.port, cert_filepath=str(self.iot.cert),
            pri_key_filepath=str(self.iot.key), ca_filepath=str(self.iot.root_ca) if self.iot.root_ca else None,
            client_id=self.iot.client_id, clean_session=True, keep_alive_secs=self.iot.keepalive, will=will,
            reconnect_min_timeout_secs=1, reconnect_max_timeout_secs=30, enable_metrics_collection=False,
            on_connection_interrupted=self._on_interrupted, on_connection_resumed=self._on_resumed,
        )

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.drainer.start()
        self._connector.start()

    def stop(self, timeout: float = 5.0) -> bool:
        self._stopping.set()
        flushed = self.drainer.flush(timeout)  # waits for a reconnect too: the caller's timeout bounds it
        self.drainer.stop()
        if self.connected:
            try:
                future, _ = self.connection.publish(self.builder.topics.status,
                                                    self.builder.status("offline", self.iot.client_id, time.time()),
                                                    mqtt.QoS.AT_LEAST_ONCE, retain=True)
                future.result(min(2.0, max(timeout, 0.1)))
                self.connection.disconnect().result(5)
            except Exception as exc:  # noqa: BLE001 - shutting down; the will covers a failed goodbye
                log.warning("iot_core: clean disconnect failed: %s", exc)
        self.connected = False
        return flushed

    def state(self) -> dict:
        return {"transport": self.name, "connected": self.connected, "endpoint": self.iot.endpoint,
                "port": self.iot.port, "connected_since": self.connected_since, "connects": self.connects,
                "inflight": self.drainer.inflight, "last_error": self.last_error}

    # ------------------------------------------------------------------ connection handling
    def _connect_loop(self) -> None:
        delay = 1.0
        while not self._stopping.is_set():
            try:
                self.connection.connect().result(timeout=30)
            except Exception as exc:  # noqa: BLE001 - awscrt raises AwsCrtError/TimeoutError; keep retrying
                self.last_error = str(exc)
                log.error("iot_core: cannot connect to %s:%s: %s; retrying in %.0f s", self.iot.endpoint,
                          self.iot.port, exc, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            self._mark_online()
            return

    def _mark_online(self) -> None:
        self.connected = True
        self.connected_since = time.time()
        self.connects += 1
        self.last_error = None
        log.info("iot_core: connected to %s:%s", self.iot.endpoint, self.iot.port)
        self.connection.publish(self.builder.topics.status, self.builder.status("online", self.iot.client_id,
                                                                                time.time()),
                                mqtt.QoS.AT_LEAST_ONCE, retain=True)
        self._online.set()
        self.drainer.wake()

    def _on_interrupted(self, connection: mqtt.Connection, error: Exception, **kwargs: object) -> None:
        log.warning("iot_core: connection interrupted (%s); reconnecting", error)
        self.last_error = str(error)
        self.connected = False
        self._online.clear()

    def _on_resumed(self, connection: mqtt.Connection, return_code: object, session_present: bool,
                    **kwargs: object) -> None:
        self._mark_online()

    # ------------------------------------------------------------------ drainer thread
    def _send(self, message: QueuedMessage) -> int | None:
        try:
            future, _ = self.connection.publish(message.topic, message.payload, mqtt.QoS.AT_LEAST_ONCE,
                                                retain=message.retain)
        except Exception as exc:  # noqa: BLE001 - e.g. connection being torn down: retry later
            log.warning("iot_core: publish refused: %s", exc)
            return None
        seq = message.seq
        future.add_done_callback(lambda f, seq=seq: self._done(f, seq))
        return seq

    def _done(self, future: Future, seq: int) -> None:
        if future.exception() is None:
            self.drainer.ack(seq)
        else:
            self.drainer.nack(seq)

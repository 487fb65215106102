"""Visual anomaly inspection inside `edge-app run`: the config's ``inspections:`` on the streams' frames.

Each stream's pipeline handler (detections -> counter) is wrapped so that, after counting, the frame is
offered to that stream's `AnomalyInspector`s. Inspection runs on the stream's post-processing thread, off
the inference thread, and only on due frames (``every_n_frames``) or after a trigger. A result is committed
through the same durable publisher as counts, so it reaches ``<prefix>/<line>/anomaly`` after any outage.

Triggers: a message on an inspection's ``trigger_topic`` makes the next frame of its stream be inspected
(e.g. a PLC publishing "carrier in position"). `TriggerListener` subscribes with its own MQTT client so a
slow or absent broker never blocks the pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from edge_app.config import AppConfig
from edge_app.detections import Detections
from edge_app.frame import Frame

log = logging.getLogger(__name__)

Handler = Callable[[Frame, Detections], None]


class InspectingHandler:
    """Calls the stream's handler, then its inspectors; commits each `AnomalyResult` through ``publisher``."""

    def __init__(self, inner: Handler, inspectors: Sequence[Any], publisher: Any) -> None:
        self.inner = inner
        self.inspectors = list(inspectors)
        self.publisher = publisher
        self.failures = 0

    def __call__(self, frame: Frame, detections: Detections) -> None:
        self.inner(frame, detections)
        for inspector in self.inspectors:
            try:
                result = inspector.inspect(frame)
            except Exception:  # noqa: BLE001 - a bad frame must not stop counting on this stream
                self.failures += 1
                log.exception("inspection %s: failed on frame %d", inspector.config.name, frame.index)
                continue
            if result is not None:
                self.publisher.commit([result])

    def __getattr__(self, name: str) -> Any:  # finish(), close(), counter ... of the wrapped processor
        return getattr(self.inner, name)


def wrap_handlers(handlers: Mapping[str, Handler], inspectors: Sequence[Any], publisher: Any) -> dict[str, Any]:
    """Wrap only the streams that have inspections; the others keep their handler unchanged."""
    wrapped: dict[str, Any] = dict(handlers)
    for stream in {i.config.stream for i in inspectors}:
        if stream in wrapped:
            wrapped[stream] = InspectingHandler(
                wrapped[stream], [i for i in inspectors if i.config.stream == stream], publisher)
    return wrapped


class TriggerListener:
    """Subscribes to the inspections' trigger topics and calls `AnomalyInspector.trigger()` on a message."""

    def __init__(self, cfg: AppConfig, inspectors: Sequence[Any]) -> None:
        self.by_topic: dict[str, list[Any]] = {}
        for inspector in inspectors:
            if inspector.config.trigger_topic:
                self.by_topic.setdefault(inspector.config.trigger_topic, []).append(inspector)
        self.cfg = cfg
        self.client: Any = None

    def start(self) -> None:
        if not self.by_topic or not self.cfg.mqtt.enabled:
            return
        import paho.mqtt.client as mqtt

        m = self.cfg.mqtt
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{m.client_id}-triggers")
        if m.username:
            client.username_pw_set(m.username, m.password)
        if m.tls is not None:
            client.tls_set(ca_certs=str(m.tls.ca_certs) if m.tls.ca_certs else None,
                           certfile=str(m.tls.certfile) if m.tls.certfile else None,
                           keyfile=str(m.tls.keyfile) if m.tls.keyfile else None)
            client.tls_insecure_set(m.tls.insecure)

        def on_connect(c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
            if not reason.is_failure:  # (re)subscribe on every connect: sessions are clean
                for topic in self.by_topic:
                    c.subscribe(topic, qos=1)

        def on_message(_c: Any, _u: Any, message: Any) -> None:
            for inspector in self.by_topic.get(message.topic, []):
                inspector.trigger()
                log.info("inspection %s: triggered by %s", inspector.config.name, message.topic)

        client.on_connect = on_connect
        client.on_message = on_message
        client.connect_async(m.host, m.port, keepalive=m.keepalive)
        client.loop_start()
        self.client = client

    def stop(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()
            self.client = None

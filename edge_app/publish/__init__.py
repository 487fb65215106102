"""Everything from counter events to the broker: messages, durable outbox, MQTT / AWS IoT Core transports.

The app uses only `EventPublisher` (see ``facade.py``); the rest is exposed for tests and benchmarks.
"""

from edge_app.publish.facade import EventPublisher

__all__ = ["EventPublisher"]

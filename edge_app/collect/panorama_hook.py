"""Collection mode for the Panorama code node: the same `FrameCollector`, switched on by a parameter.

The node calls ``hook.offer(stream_id, image, time_stamp)`` for every media object and ``hook.close()`` when
it stops. Settings (``collect_mode`` and friends) come from a mapping: the node passes graph parameters when
its package interface declares them, otherwise the process environment (``EDGE_APP_COLLECT_MODE=1`` etc.,
which a Panorama application gets through its container's environment):

======================  ===============================  =========================================
key                      env variable                     meaning
======================  ===============================  =========================================
``collect_mode``         ``EDGE_APP_COLLECT_MODE``        ``true``/``1`` switches collection on
``collect_every_s``      ``EDGE_APP_COLLECT_EVERY_S``     seconds between kept frames (default 60)
``collect_bucket``       ``EDGE_APP_COLLECT_BUCKET``      S3 bucket (empty: spool only)
``collect_prefix``       ``EDGE_APP_COLLECT_PREFIX``      S3 key prefix (default ``collect``)
``collect_rois``         ``EDGE_APP_COLLECT_ROIS``        JSON ``{"stream": [[x, y], ...]}`` masks
======================  ===============================  =========================================

Frames are spooled under ``<storage>/collect`` (kept across application restarts) and uploaded by a
background thread with the application's IAM role.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge_app.collect.collector import FrameCollector
from edge_app.collect.spool import Spool
from edge_app.collect.uploader import Uploader

log = logging.getLogger(__name__)

KEYS = ("collect_mode", "collect_every_s", "collect_bucket", "collect_prefix", "collect_rois")


def settings_from(values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Given values win over ``EDGE_APP_COLLECT_*`` environment variables."""
    out = {}
    for key in KEYS:
        env = os.environ.get("EDGE_APP_" + key.upper())
        value = (values or {}).get(key, env)
        if value is not None:
            out[key] = value
    return out


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _seconds(time_stamp: Any) -> float:
    """Panorama's ``time_stamp`` is ``(seconds, microseconds)``; plain numbers are accepted too."""
    if isinstance(time_stamp, tuple | list) and len(time_stamp) == 2:
        return float(time_stamp[0]) + float(time_stamp[1]) / 1e6
    return float(time_stamp)


class PanoramaCollectHook:
    def __init__(self, storage: Path, settings: Mapping[str, Any], s3: Any = None) -> None:
        self.every_s = float(settings.get("collect_every_s", 60.0))
        self.prefix = str(settings.get("collect_prefix") or "collect")
        self.rois = json.loads(settings.get("collect_rois") or "{}")
        self.spool = Spool(Path(storage) / "collect")
        self.collectors: dict[str, FrameCollector] = {}
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        bucket = settings.get("collect_bucket")
        if bucket:
            if s3 is None:
                import boto3

                s3 = boto3.client("s3")
            self.uploader: Uploader | None = Uploader(self.spool, s3, str(bucket))
            self.thread = threading.Thread(target=self.uploader.run, args=(self.stop,), daemon=True,
                                           name="panorama-collect-upload")
            self.thread.start()
        else:
            self.uploader = None

    @classmethod
    def create(cls, storage: Path, values: Mapping[str, Any] | None = None, s3: Any = None
               ) -> PanoramaCollectHook | None:
        """The hook when collection is switched on, else ``None`` (the node then does nothing extra)."""
        settings = settings_from(values)
        return cls(storage, settings, s3) if _truthy(settings.get("collect_mode", "")) else None

    def offer(self, stream_id: str, image: np.ndarray, time_stamp: Any) -> None:
        name = "".join(c if c.isalnum() or c in "_.-" else "_" for c in str(stream_id)) or "camera"
        collector = self.collectors.get(name)
        if collector is None:
            collector = FrameCollector(self.spool, stream=name, prefix=self.prefix, every_s=self.every_s,
                                       roi=self.rois.get(name), camera={"source": "panorama"})
            self.collectors[name] = collector
        try:
            collector.offer(image, _seconds(time_stamp))
        except Exception:  # collection must never stop the counting loop (disk full, bad frame...)
            log.exception("collect: frame of %s not collected", name)

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=10)
        if self.uploader is not None:
            self.uploader.drain()

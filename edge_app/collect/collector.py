"""`FrameCollector`: which frames of a stream to keep for labeling, and how they are stored.

Rules (from the plant article: "saves them at 60 seconds intervals ... this prevents capturing similar
images in the video sequence that are a few seconds apart. We also mask out adjacent regions"):

1. at most one frame every ``every_s`` seconds of *stream* time (media time for files, camera time live);
2. the stream's ROI is applied (`Roi.mask`: black outside the polygon), so labelers see, and the model is
   trained on, what the counter looks at, and neighbouring lines or people are not uploaded;
3. a frame whose perceptual hash is within ``dup_threshold`` bits of a recently kept one is skipped (an idle
   line produces the same picture for minutes);
4. the JPEG and a sidecar JSON (stream, line, timestamps, camera settings, hash) go to the `Spool` under an
   S3 key fixed now: ``<prefix>/<line>/<stream>/<YYYY-MM-DD>/<stream>-<UTC time>-<hash>.jpg``. The line is a
   path segment, which is what the training split groups by.

The Panorama node uses the same class (``offer(image, timestamp)`` per media stream; see
`edge_app.collect.panorama_hook`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from edge_app.collect.phash import DuplicateFilter, HashKind
from edge_app.collect.spool import Spool, SpoolItem

log = logging.getLogger(__name__)


def uri_without_credentials(uri: str) -> str:
    """``rtsp://user:pw@cam/stream?token=x`` -> ``rtsp://cam/stream``: sidecars are uploaded, secrets are not."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    host_path = rest.split("@", 1)[1] if "@" in rest.split("/", 1)[0] else rest
    return f"{scheme}://{host_path.split('?', 1)[0]}"


@dataclass
class CollectStats:
    seen: int = 0
    saved: int = 0
    too_soon: int = 0
    duplicates: int = 0
    spool_full: int = 0
    distances: list[int] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("seen", "saved", "too_soon", "duplicates", "spool_full")}


class FrameCollector:
    def __init__(self, spool: Spool, *, stream: str, line: str | None = None, prefix: str = "collect",
                 every_s: float = 60.0, roi: Sequence[tuple[float, float]] | None = None,
                 dup_threshold: int = 4, hash_kind: HashKind = "phash", jpeg_quality: int = 90,
                 camera: dict | None = None, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        from edge_app.roi import Roi

        if every_s < 0:
            raise ValueError(f"every_s: expected >= 0 seconds, got {every_s}")
        self.spool = spool
        self.stream = stream
        self.line = line or stream
        self.prefix = prefix.strip("/")
        self.every_s = every_s
        self.roi = Roi(roi)
        self.duplicates = DuplicateFilter(dup_threshold, kind=hash_kind)
        self.jpeg_quality = jpeg_quality
        self.camera = camera or {}
        self.clock = clock
        self.stats = CollectStats()
        self._last_t: float | None = None

    def due(self, t: float) -> bool:
        """Is a frame at stream time ``t`` at least ``every_s`` after the last kept one (or the first)?"""
        return self._last_t is None or t - self._last_t >= self.every_s or t < self._last_t

    def offer(self, image: np.ndarray, t: float) -> SpoolItem | None:
        """Consider one BGR frame at stream time ``t`` (s); the spooled item if it was kept."""
        import cv2

        self.stats.seen += 1
        if not self.due(t):
            self.stats.too_soon += 1
            return None
        masked = self.roi.mask(image)
        duplicate, value, nearest = self.duplicates.check(masked)
        if nearest is not None:
            self.stats.distances.append(nearest)
        if duplicate:
            self.stats.duplicates += 1
            self._last_t = t  # wait a full interval again: the next sample should be another minute on
            return None
        ok, buf = cv2.imencode(".jpg", masked, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise RuntimeError(f"{self.stream}: JPEG encoding failed")
        now = self.clock()
        stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{stamp}-{self.stream}-{value:016x}"
        key = f"{self.prefix}/{self.line}/{self.stream}/{now:%Y-%m-%d}/{self.stream}-{stamp}-{value:016x}.jpg"
        h, w = image.shape[:2]
        sidecar = {
            "stream": self.stream, "line": self.line, "s3_key": key,
            "captured_at": now.isoformat(timespec="milliseconds"), "stream_time_s": round(float(t), 3),
            "camera": {"width": int(w), "height": int(h), **self.camera},
            "roi": None if self.roi.polygon is None else self.roi.polygon.tolist(),
            "phash": f"{value:016x}", "hash_kind": self.duplicates.kind,
            "nearest_hash_distance": nearest, "jpeg_quality": self.jpeg_quality,
        }
        item = self.spool.put(name, buf.tobytes(), sidecar)
        if item is None:
            self.stats.spool_full += 1
            return None
        self._last_t = t
        self.stats.saved += 1
        log.info("collected %s (t=%.1f s, nearest hash distance %s)", key, t, nearest)
        return item

"""What travels between pipeline threads: a frame plus the moment it left the decoder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge_app.detections import Detections
from edge_app.frame import Frame


@dataclass(slots=True)
class Job:
    """A decoded frame waiting for inference. ``decoded_at`` (``time.monotonic()``) starts the latency clock."""

    frame: Frame
    decoded_at: float
    tensor: np.ndarray | None = None
    """The frame's network input, when the decode thread already preprocessed it (see `split`)."""


class BatchDetector(Protocol):
    """The part of `edge_app.detectors.Detector` the pipeline needs."""

    def detect(self, images: list[np.ndarray]) -> list[Detections]: ...

"""The unit that flows from a source into the detector."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded video frame.

    ``timestamp`` is media time in seconds for files (frame index / fps, so replays are reproducible)
    and wall-clock UNIX time for live sources.
    """

    stream: str
    index: int
    timestamp: float
    image: np.ndarray  # BGR, HxWx3, uint8 (OpenCV's layout)
    live: bool = False

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

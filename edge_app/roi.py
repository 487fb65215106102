"""Region of interest: the polygon of a stream's frame in which trays are counted.

A camera above a packaging line also sees the conveyor, the stack of full bins next door and the
worker; only trays inside the bin being filled should be counted. The ROI is a polygon in frame
pixels; a detection counts when its box *centre* lies inside it (the centre is stable under box
jitter, and a tray half-hidden by the bin rim still has its centre in the bin).

``Roi(None)`` is "everything": no filtering, no masking. Points exactly on the polygon's edge
count as inside (the test is done with a tiny tolerance on both sides of the edge).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from edge_app.config import StreamConfig
from edge_app.detections import Detections

if TYPE_CHECKING:
    from matplotlib.path import Path as PolygonPath

_EDGE_TOLERANCE_PX = 1e-6


class Roi:
    """A polygon ``[(x, y), ...]`` in frame pixels, or ``None`` for the whole frame."""

    def __init__(self, polygon: Sequence[tuple[float, float]] | None) -> None:
        if polygon is None:
            self.polygon: np.ndarray | None = None
            self._path: PolygonPath | None = None
            return
        from matplotlib.path import Path as PolygonPath  # imported here: keeps `edge-app --help` fast

        points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
        if len(points) < 3:
            raise ValueError(f"Roi: a polygon needs at least 3 points, got {len(points)}")
        self.polygon = points
        self._path = PolygonPath(points, closed=False)

    @classmethod
    def from_config(cls, stream: StreamConfig) -> Roi:
        return cls(stream.roi)

    @property
    def is_everything(self) -> bool:
        return self._path is None

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Boolean ``(N,)``: which of the ``(N, 2)`` points lie inside the polygon (vectorized)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if self._path is None:
            return np.ones(len(points), dtype=bool)
        if len(points) == 0:
            return np.zeros(0, dtype=bool)
        # matplotlib grows or shrinks the polygon by `radius` depending on its orientation; testing
        # with +tol and -tol and OR-ing makes edge points inside whatever the winding order.
        inside = self._path.contains_points(points, radius=_EDGE_TOLERANCE_PX)
        inside |= self._path.contains_points(points, radius=-_EDGE_TOLERANCE_PX)
        return inside

    def filter(self, detections: Detections) -> Detections:
        """The detections whose box centre lies inside the polygon."""
        if self._path is None or len(detections) == 0:
            return detections
        return detections.filter(self.contains(detections.centers))

    def mask(self, image: np.ndarray) -> np.ndarray:
        """A copy of ``image`` that is black outside the polygon (the input itself when no ROI)."""
        if self.polygon is None:
            return image
        import cv2

        mask = np.zeros(image.shape[:2], dtype=np.uint8)
        cv2.fillPoly(mask, [np.round(self.polygon).astype(np.int32)], 255)
        out = np.zeros_like(image)
        out[mask > 0] = image[mask > 0]
        return out

    def __repr__(self) -> str:
        return "Roi(None)" if self.polygon is None else f"Roi({self.polygon.tolist()})"

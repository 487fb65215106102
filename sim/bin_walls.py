"""The bin as a solid: which of its walls the camera sees, painted and labelled in depth order.

The bin is an open box: its floor outline at ``z = 0``, the outer base slightly smaller than the rim (stackable
crates taper), the rim's outer and inner outlines at ``z = depth``. Each wall is a strip of quads between two
outlines with the same number of points. A wall face is visible when the camera centre lies on the side its
normal points to: ``n . (C - P) > 0`` (outer faces point away from the bin centre, inner faces towards it).
The near wall therefore shows its outer face and hides the strip of floor (and trays) behind it; the far wall
shows its inner face. Painter's order, back to front: floor layer (with trays), visible inner faces, visible outer
faces, rim. The same order fills the label buffer with an occluder id, so trays hidden by a near wall lose
visible fraction exactly as they lose pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sim.bin_sprite import RIM_CM, BinGeometry
from sim.draw import ONE, SHIFT, rounded_rect
from sim.pinhole import project

TAPER_CM = 1.0
PER_CORNER = 4
LIGHT = np.array([-0.55, -0.83])  # lamps towards the top-left of the plane


@dataclass(frozen=True)
class BinSolid:
    """Outlines in bin-local cm (all with the same number of points, corresponding one to one)."""

    floor: np.ndarray  # z = 0
    outer_base: np.ndarray  # z = 0
    inner_top: np.ndarray  # z = depth
    outer_top: np.ndarray  # z = depth
    depth: float

    @classmethod
    def of(cls, geo: BinGeometry, depth: float) -> BinSolid:
        ow, oh = geo.outer_size
        fw, fh = geo.floor_size
        return cls(
            floor=rounded_rect(fw, fh, 1.2, per_corner=PER_CORNER),
            outer_base=rounded_rect(ow - 2 * TAPER_CM, oh - 2 * TAPER_CM, 2.5, per_corner=PER_CORNER),
            inner_top=rounded_rect(ow - 2 * RIM_CM, oh - 2 * RIM_CM, 2.0, per_corner=PER_CORNER),
            outer_top=rounded_rect(ow, oh, 3.0, per_corner=PER_CORNER),
            depth=depth,
        )


@dataclass(frozen=True)
class Face:
    quad: np.ndarray  # 4x2 image px
    shade: float  # multiplies the wall colour


def _pts(p: np.ndarray) -> np.ndarray:
    return np.round(p * ONE).astype(np.int32).reshape(-1, 1, 2)


def _strip(low: np.ndarray, high: np.ndarray, H_low: np.ndarray, H_high: np.ndarray, pose: np.ndarray,
           cam_xy: np.ndarray, outward: bool, base_shade: float) -> list[Face]:
    """The visible quads of the wall strip between outline ``low`` (on H_low) and ``high`` (on H_high)."""
    n = len(low)
    lo_img, hi_img = project(H_low @ pose, low), project(H_high @ pose, high)
    mid_local = (low + np.roll(low, -1, 0)) / 2
    d = np.roll(low, -1, 0) - low
    normal = np.stack([d[:, 1], -d[:, 0]], 1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-9
    normal *= np.where((normal * mid_local).sum(1) < 0, -1.0, 1.0)[:, None]  # away from the bin centre
    if not outward:
        normal = -normal
    rot = pose[:2, :2]
    normal_plane = normal @ rot.T
    mid_plane = mid_local @ rot.T + pose[:2, 2]
    faces = []
    for i in range(n):
        j = (i + 1) % n
        if float(normal_plane[i] @ (cam_xy - mid_plane[i])) <= 0:
            continue
        shade = base_shade + 0.22 * float(normal_plane[i] @ LIGHT)
        faces.append(Face(np.array([lo_img[i], lo_img[j], hi_img[j], hi_img[i]]), shade))
    return faces


class BinPainter:
    """Projects one bin pose into visible faces; paints them and labels them."""

    def __init__(self, solid: BinSolid, H_at, cam_xy: np.ndarray) -> None:
        self.solid, self.H_at, self.cam_xy = solid, H_at, cam_xy

    def faces(self, pose: np.ndarray, offset: np.ndarray) -> tuple[list[Face], list[Face], list[np.ndarray]]:
        """(visible inner faces, visible outer faces, rim quads) for bin ``pose``; ``offset`` is a 3x3 image-space
        matrix applied after the camera (padding or shake)."""
        s = self.solid
        H0, Hd = offset @ self.H_at(0.0), offset @ self.H_at(s.depth)
        inner = _strip(s.floor, s.inner_top, H0, Hd, pose, self.cam_xy, False, 0.8)
        outer = _strip(s.outer_base, s.outer_top, H0, Hd, pose, self.cam_xy, True, 0.72)
        it, ot = project(Hd @ pose, s.inner_top), project(Hd @ pose, s.outer_top)
        n = len(it)
        rim = [np.array([it[i], it[(i + 1) % n], ot[(i + 1) % n], ot[i]]) for i in range(n)]
        return inner, outer, rim

    def silhouette(self, pose: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """Convex outline of the whole bin in image px (what it hides of anything below it)."""
        s = self.solid
        pts = np.vstack([project(offset @ self.H_at(0.0) @ pose, s.outer_base),
                         project(offset @ self.H_at(s.depth) @ pose, s.outer_top)])
        return cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2).astype(np.float64)

    @staticmethod
    def paint_faces(img: np.ndarray, faces: list[Face], color: tuple[float, float, float]) -> None:
        c = np.asarray(color, np.float64)
        for f in faces:
            cv2.fillConvexPoly(img, _pts(f.quad), tuple(float(v) for v in np.clip(c * f.shade, 0, 255)),
                               cv2.LINE_AA, SHIFT)

    @staticmethod
    def label_quads(label: np.ndarray, quads: list[np.ndarray], value: int) -> None:
        for q in quads:
            cv2.fillConvexPoly(label, _pts(q), value, cv2.LINE_8, SHIFT)

"""The fixed camera: a pinhole looking down at the table plane, as a 3x3 homography.

Everything in the scene (bins, trays, the worker's hand) is placed on the table plane ``z = 0`` in centimetres,
with the nominal bin centre at the origin, ``x`` to the right and ``y`` towards the bottom of the image.
A pinhole camera maps a plane to the image by a homography ``H = K [r1 r2 t]`` where ``K`` holds the focal length
and principal point, ``r1, r2`` are the first two columns of the camera rotation and ``t`` its translation.

The camera sits ``height`` cm from the bin centre, looking at it; ``tilt`` turns it away from straight down
(the far side of the bin then looks smaller: perspective), ``roll`` turns it about its optical axis, and
``yaw`` turns the plane (the bin is not aligned with the image axes). The focal length scales with the output
width so a scene looks the same at every resolution: at 1280 px it is 1250 px (a 54 degree horizontal field
of view), which puts a 15 cm tray at about 120 px, ~9 % of the frame width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FOCAL_AT_1280 = 1250.0


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


@dataclass(frozen=True)
class Camera:
    """Plane (cm) -> image (px) homography for one line at one resolution.

    ``H`` maps the table plane ``z = 0``; :meth:`H_at` maps the horizontal plane at height ``z`` (a bin's rim,
    a lifted tray, the worker's shoulder): ``H_z = K [r1 r2 (z r3 + t)] Yaw``, so higher things look bigger and
    shift away from the image centre (parallax), which is what makes bin walls visible.
    """

    H: np.ndarray  # 3x3, float64
    width: int
    height: int
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    yaw: np.ndarray
    center: np.ndarray  # camera centre (x, y, z) in plane coordinates (cm)

    @classmethod
    def looking_at_bin(
        cls, width: int, height: int, tilt_deg: float, yaw_deg: float, roll_deg: float, height_cm: float
    ) -> Camera:
        f = FOCAL_AT_1280 * width / 1280.0
        K = np.array([[f, 0, width / 2.0], [0, f, height / 2.0], [0, 0, 1]])
        # world -> camera for a camera straight above the origin: x_c = x, y_c = y, z_c = -z (looking down)
        looking_down = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, -1]])
        R = _rot_z(math.radians(roll_deg)) @ _rot_x(math.radians(tilt_deg)) @ looking_down
        # camera centre C such that the origin lies on the optical axis at distance height_cm
        axis_world = R.T @ np.array([0.0, 0.0, 1.0])
        C = -height_cm * axis_world
        t = -R @ C
        yaw = _rot_z(math.radians(yaw_deg))
        plane_to_cam = np.column_stack([R[:, 0], R[:, 1], t])
        H = K @ plane_to_cam @ yaw
        center = np.concatenate([yaw.T[:2, :2] @ C[:2], C[2:]])
        return cls(H / H[2, 2], width, height, K, R, t, yaw, center)

    def H_at(self, z: float) -> np.ndarray:
        """Homography of the horizontal plane ``z`` cm above the table."""
        M = self.K @ np.column_stack([self.R[:, 0], self.R[:, 1], self.t + z * self.R[:, 2]]) @ self.yaw
        return M / M[2, 2]

    def project(self, pts: np.ndarray) -> np.ndarray:
        """``(N, 2)`` plane points (cm) -> ``(N, 2)`` image points (px)."""
        return project(self.H, pts)

    def scale_at(self, x: float, y: float, z: float = 0.0) -> float:
        """Local image scale in px per cm at point (x, y, z) (geometric mean of the two axes)."""
        p = project(self.H_at(z), np.array([[x, y], [x + 1.0, y], [x, y + 1.0]]))
        return float(math.sqrt(np.linalg.norm(p[1] - p[0]) * np.linalg.norm(p[2] - p[0])))

    def to_plane(self, pts: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`project`: image px -> plane cm."""
        return project(np.linalg.inv(self.H), pts)


def project(M: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 3x3 projective matrix to ``(N, 2)`` points."""
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    h = pts @ M[:, :2].T + M[:, 2]
    return h[:, :2] / h[:, 2:3]


def translate(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0, dx], [0, 1, dy], [0, 0, 1]])


def rotate_translate(angle_deg: float, dx: float, dy: float) -> np.ndarray:
    """Rigid 2-D motion as a 3x3 matrix: rotate about the origin, then translate."""
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return np.array([[c, -s, dx], [s, c, dy], [0, 0, 1.0]])


def scale(sx: float, sy: float | None = None) -> np.ndarray:
    return np.diag([sx, sx if sy is None else sy, 1.0])

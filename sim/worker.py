"""The worker's arm and hand: where they are (kinematics on the plane) and how they are drawn.

Kinematics: during a :class:`sim.scene.HandMove` the hand travels from just beyond the frame edge (near the
shoulder) to its target with a smoothstep ease, holds (lowering the tray into its slot), and goes back. When it
carries a tray, the target is the tray's centre and the wrist sits behind the tray's near edge, towards the
shoulder. The arm is two segments of equal length (upper arm, forearm); the elbow follows from two-link inverse
kinematics: with shoulder-wrist distance ``d`` and segment length ``L`` the elbow is ``sqrt(L^2 - (d/2)^2)``
off the shoulder-wrist midpoint, perpendicular to it (a straight arm when ``d >= 2L``).

Drawing: sleeve and glove are shaded capsules (dark outline, mid tone, highlight: reads as a cylinder), the palm
an ellipse, four fingers curled over the tray edge when carrying. The same shapes are filled into the label
buffer so occlusion of trays by the arm is exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from sim.draw import ONE, SHIFT
from sim.pinhole import project
from sim.scene import ARM_SEGMENT_CM, HandMove

SHOULDER_Z_CM = 40.0


def smoothstep(u: float) -> float:
    u = min(1.0, max(0.0, u))
    return u * u * (3 - 2 * u)


@dataclass(frozen=True)
class HandState:
    """Where things are at one instant (plane cm)."""

    shoulder: tuple[float, float]
    wrist: tuple[float, float]
    direction: tuple[float, float]  # unit vector from wrist towards the fingers
    tray_center: tuple[float, float] | None  # the carried tray, if any
    tray_angle: float  # degrees
    tray_height: float  # 0 on the bin floor .. 1 carried high (shadow offset, scale)
    speed_cm_s: float


def hand_state(move: HandMove, t: float, tray_size_cm: tuple[float, float]) -> HandState:
    """State of ``move`` at time ``t`` (``move.start_t <= t < move.end_t``).

    Carrying, the wrist is 8 cm behind the tray's near edge so the palm ends just past the rim and the fingers
    lie over it; the near edge is the tray's half extent along the approach direction.
    """
    sx, sy = move.shoulder
    tx, ty = move.target
    vx, vy = tx - sx, ty - sy
    n = math.hypot(vx, vy) or 1.0
    ux, uy = vx / n, vy / n  # shoulder -> target
    a = math.radians(move.tray_angle)
    along_long = abs(ux * math.cos(a) + uy * math.sin(a))
    along_short = abs(-ux * math.sin(a) + uy * math.cos(a))
    half_extent = along_long * tray_size_cm[0] / 2 + along_short * tray_size_cm[1] / 2
    grip = half_extent + 8.0 if move.tray_id is not None else 4.5
    home = (sx + ux * 14.0, sy + uy * 14.0)
    reach = (tx - ux * grip, ty - uy * grip)

    def wrist_at(tt: float) -> tuple[float, float]:
        if tt < move.reach_t:
            k = smoothstep((tt - move.start_t) / (move.reach_t - move.start_t))
            # a slight arc, not a straight line
            arc = math.sin(math.pi * k) * 4.0
            return (home[0] + (reach[0] - home[0]) * k - uy * arc, home[1] + (reach[1] - home[1]) * k + ux * arc)
        if tt < move.release_t:
            return reach
        k = smoothstep((tt - move.release_t) / (move.end_t - move.release_t))
        return reach[0] + (home[0] - reach[0]) * k, reach[1] + (home[1] - reach[1]) * k

    w = wrist_at(t)
    w2 = wrist_at(t + 1 / 30)
    speed = math.hypot(w2[0] - w[0], w2[1] - w[1]) * 30
    carrying = move.tray_id is not None and t < move.release_t
    if carrying:
        if t < move.reach_t:
            height = 1.0
            angle = move.tray_angle + 20.0 * (1 - smoothstep((t - move.start_t) / (move.reach_t - move.start_t)))
        else:
            height = 1.0 - smoothstep((t - move.reach_t) / (0.7 * (move.release_t - move.reach_t)))
            angle = move.tray_angle
        center = (w[0] + ux * grip, w[1] + uy * grip)
    else:
        height, angle, center = 0.0, 0.0, None
    return HandState(move.shoulder, w, (ux, uy), center, angle, height, speed)


def elbow(shoulder: tuple[float, float], wrist: tuple[float, float], side: float = 1.0) -> tuple[float, float]:
    """Two-link inverse kinematics on the plane (see the module docstring)."""
    sx, sy = shoulder
    wx, wy = wrist
    d = math.hypot(wx - sx, wy - sy) or 1e-6
    mx, my = (sx + wx) / 2, (sy + wy) / 2
    h = math.sqrt(max(0.0, ARM_SEGMENT_CM**2 - (d / 2) ** 2))
    return mx - (wy - sy) / d * h * side, my + (wx - sx) / d * h * side


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(p[0] * ONE)), int(round(p[1] * ONE))


def _capsule(img: np.ndarray, a: np.ndarray, b: np.ndarray, width: float, color: tuple[int, ...] | int,
             aa: bool) -> None:
    lt = cv2.LINE_AA if aa else cv2.LINE_8
    cv2.line(img, _pt(a), _pt(b), color, max(1, int(round(width))), lt, SHIFT)
    r = max(1, int(round(width / 2 * ONE)))
    cv2.circle(img, _pt(a), r, color, -1, lt, SHIFT)
    cv2.circle(img, _pt(b), r, color, -1, lt, SHIFT)


def _shaded(img: np.ndarray, a: np.ndarray, b: np.ndarray, width: float, color: tuple[int, int, int]) -> None:
    c = np.array(color, np.float32)
    d = b - a
    n = np.array([-d[1], d[0]]) / (np.linalg.norm(d) + 1e-6)
    if n[0] + n[1] > 0:  # highlight on the side facing the lamps (up-left)
        n = -n
    _capsule(img, a, b, width, tuple(int(v) for v in c * 0.55), True)
    _capsule(img, a + n * width * 0.08, b + n * width * 0.08, width * 0.75, tuple(int(v) for v in c * 0.85), True)
    _capsule(img, a + n * width * 0.2, b + n * width * 0.2, width * 0.3, tuple(int(min(255, v * 1.08 + 10))
                                                                                for v in c), True)


@dataclass(frozen=True)
class ArmShapes:
    """The arm in image px: capsules ``(a, b, width)`` and the palm ellipse, used to paint and to label."""

    sleeve: tuple[np.ndarray, np.ndarray, float]
    upper: tuple[np.ndarray, np.ndarray, float]
    forearm: tuple[np.ndarray, np.ndarray, float]
    palm: tuple[np.ndarray, tuple[float, float], float]  # centre, half axes, angle (deg)
    fingers: list[tuple[np.ndarray, np.ndarray, float]]

    def bbox(self) -> tuple[float, float, float, float]:
        pts = [self.upper[0], self.upper[1], self.forearm[1], self.palm[0]] + [f[1] for f in self.fingers]
        p = np.array(pts)
        pad = max(self.upper[2], self.palm[1][0])
        return p[:, 0].min() - pad, p[:, 1].min() - pad, p[:, 0].max() + pad, p[:, 1].max() + pad


def arm_shapes(H_at: Callable[[float], np.ndarray], state: HandState, px_per_cm: float, carrying: bool,
               wrist_z: float) -> ArmShapes:
    """Project the arm of ``state``; ``H_at(z)`` is the frame homography of the plane at height z.

    The shoulder is ``SHOULDER_Z_CM`` above the table, the elbow half-way down, the hand at ``wrist_z``: the arm
    gets bigger towards the camera, as it does in a real top-down view. Widths use the scale at the wrist.
    """
    e = elbow(state.shoulder, state.wrist)
    H = H_at(wrist_z)
    s = project(H_at(SHOULDER_Z_CM), np.array([state.shoulder]))[0]
    el = project(H_at((SHOULDER_Z_CM + wrist_z) / 2), np.array([e]))[0]
    w = project(H, np.array([state.wrist]))[0]
    ux, uy = state.direction
    wx, wy = state.wrist
    palm_c = project(H, np.array([[wx + ux * 4.5, wy + uy * 4.5]]))[0]
    cuff = el + (w - el) * 0.55
    ang = math.degrees(math.atan2(palm_c[1] - w[1], palm_c[0] - w[0]))
    fingers = []
    # four fingers fanning out from the front of the palm (short when curled over a tray rim), and a thumb
    for k, (spread, length) in enumerate(((-14, 6.0), (-4, 7.0), (5, 6.6), (14, 5.4), (-55, 5.0))):
        if carrying and k < 4:
            length *= 0.55
        side = (k - 1.5) * 2.0 if k < 4 else -4.0
        base = (wx + ux * 8.0 - uy * side, wy + uy * 8.0 + ux * side)
        a = math.radians(spread)
        fx, fy = ux * math.cos(a) - uy * math.sin(a), ux * math.sin(a) + uy * math.cos(a)
        tip = (base[0] + fx * length, base[1] + fy * length)
        fa, fb = project(H, np.array([base, tip]))
        fingers.append((fa, fb, 2.3 * px_per_cm))
    return ArmShapes(
        sleeve=(s, cuff, 9.0 * px_per_cm),
        upper=(s, el, 11.0 * px_per_cm),
        forearm=(el, w, 8.0 * px_per_cm),
        palm=(palm_c, (5.5 * px_per_cm, 4.8 * px_per_cm), ang),
        fingers=fingers,
    )


def draw_arm(img: np.ndarray, arm: ArmShapes, glove: tuple[int, int, int], sleeve: tuple[int, int, int]) -> None:
    """Paint the arm on a BGR frame (in place)."""
    el, w, fw = arm.forearm
    _shaded(img, el, w, fw, glove)
    _shaded(img, arm.upper[0], arm.upper[1], arm.upper[2], sleeve)
    _shaded(img, arm.sleeve[0], arm.sleeve[1], arm.sleeve[2], sleeve)
    for a, b, wd in arm.fingers:
        _shaded(img, a, b, wd, glove)
    c, (rx, ry), ang = arm.palm
    g = np.array(glove, np.float32)
    cv2.ellipse(img, _pt(c), (int(rx * ONE), int(ry * ONE)), ang, 0, 360, tuple(int(v) for v in g * 0.6), -1,
                cv2.LINE_AA, SHIFT)
    cv2.ellipse(img, _pt(c - np.array([rx, ry]) * 0.1), (int(rx * 0.8 * ONE), int(ry * 0.8 * ONE)), ang, 0, 360,
                tuple(int(min(255, v * 0.95 + 5)) for v in g), -1, cv2.LINE_AA, SHIFT)


def label_arm(label: np.ndarray, arm: ArmShapes, value: int, origin: tuple[float, float] = (0.0, 0.0),
              zoom: float = 1.0) -> None:
    """Fill the arm's footprint with ``value`` (no anti-aliasing: exact ids).

    ``origin``/``zoom`` map frame px to the buffer: ``(p - origin) * zoom`` (used for the low-resolution shadow).
    """
    o = np.asarray(origin, np.float64)
    for a, b, wd in (arm.forearm, arm.upper, arm.sleeve, *arm.fingers):
        _capsule(label, (a - o) * zoom, (b - o) * zoom, wd * zoom, value, False)
    c, (rx, ry), ang = arm.palm
    cv2.ellipse(label, _pt((c - o) * zoom), (int(rx * zoom * ONE), int(ry * zoom * ONE)), ang, 0, 360, value, -1,
                cv2.LINE_8, SHIFT)


def arm_shadow(frame: np.ndarray, arm: ArmShapes, offset_px: tuple[float, float], blur_px: float,
               strength: float) -> None:
    """Darken ``frame`` under the arm's soft shadow (the arm is above the bin: the shadow is offset and blurred).

    Computed at quarter resolution on the arm's bounding box only, then upsampled: a few hundred microseconds.
    """
    x0, y0, x1, y1 = arm.bbox()
    ox, oy = offset_px
    pad = 2 * blur_px
    h, w = frame.shape[:2]
    x0, y0 = max(0, int(x0 + min(ox, 0) - pad)), max(0, int(y0 + min(oy, 0) - pad))
    x1, y1 = min(w, int(x1 + max(ox, 0) + pad)), min(h, int(y1 + max(oy, 0) + pad))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return
    q = 0.25
    small = np.zeros((int((y1 - y0) * q) + 1, int((x1 - x0) * q) + 1), np.uint8)
    label_arm(small, arm, 255, (x0 - ox, y0 - oy), q)
    soft = cv2.GaussianBlur(small, (0, 0), max(0.5, blur_px * q))
    mask = cv2.resize(soft, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    keep = cv2.merge([255 - cv2.convertScaleAbs(mask, alpha=strength)] * 3)
    roi = frame[y0:y1, x0:x1]
    cv2.multiply(roi, keep, dst=roi, scale=1 / 255.0)

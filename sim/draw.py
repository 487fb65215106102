"""Small drawing helpers shared by the sprite painters: shapes, noise textures, alpha compositing.

Sprites are painted once per video (float32 BGR in 0..255, supersampled, then downsized with ``INTER_AREA`` for
anti-aliasing), so clarity matters more than speed here; the per-frame code lives in :mod:`sim.render`.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

SHIFT = 4  # fixed-point bits for cv2 polygon drawing: sub-pixel accurate edges
ONE = 1 << SHIFT


def rounded_rect(w: float, h: float, r: float, cx: float = 0.0, cy: float = 0.0, per_corner: int = 8) -> np.ndarray:
    """``(N, 2)`` outline of a ``w x h`` rectangle centred at (cx, cy) with corner radius ``r``."""
    r = max(0.0, min(r, w / 2, h / 2))
    pts = []
    corners = ((w / 2 - r, h / 2 - r, 0), (-w / 2 + r, h / 2 - r, 90), (-w / 2 + r, -h / 2 + r, 180),
               (w / 2 - r, -h / 2 + r, 270))
    for ox, oy, a0 in corners:
        for k in range(per_corner + 1):
            a = math.radians(a0 + 90 * k / per_corner)
            pts.append((cx + ox + r * math.cos(a), cy + oy + r * math.sin(a)))
    return np.array(pts, dtype=np.float64)


def fill(img: np.ndarray, pts: np.ndarray, color: float | tuple[float, ...], aa: bool = True) -> None:
    """Fill the polygon ``pts`` (float px) on ``img`` in place, with sub-pixel accuracy."""
    p = np.round(np.asarray(pts) * ONE).astype(np.int32).reshape(-1, 1, 2)
    c = color if isinstance(color, tuple) else (color,) * (img.shape[2] if img.ndim == 3 else 1)
    cv2.fillPoly(img, [p], c, cv2.LINE_AA if aa else cv2.LINE_8, SHIFT)


def mask_of(shape: tuple[int, int], pts: np.ndarray) -> np.ndarray:
    """Anti-aliased float32 coverage mask (0..1) of a polygon."""
    m = np.zeros(shape, np.float32)
    fill(m, pts, 1.0)
    return m


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float, channels: int = 1) -> np.ndarray:
    """Band-limited noise in about -1..1: random values on a grid of ``cell`` px, smoothly upsampled."""
    h, w = shape
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    g = rng.standard_normal((gh, gw, channels)).astype(np.float32)
    up = cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)
    return up.reshape(h, w, channels) if channels > 1 else up.reshape(h, w)


def fractal_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[float, ...]) -> np.ndarray:
    """Sum of :func:`smooth_noise` octaves (coarse to fine), normalised to about -1..1."""
    out = np.zeros(shape, np.float32)
    amp, total = 1.0, 0.0
    for c in cells:
        out += amp * smooth_noise(rng, shape, c)
        total += amp
        amp *= 0.55
    return out / total


def blend(dst: np.ndarray, color: np.ndarray | tuple[float, ...], alpha: np.ndarray) -> None:
    """``dst = dst * (1 - alpha) + color * alpha`` in place (float32 images, alpha HxW)."""
    a = alpha[..., None]
    dst *= 1.0 - a
    dst += np.asarray(color, np.float32) * a


def to_bgra(bgr: np.ndarray, alpha: np.ndarray, factor: int) -> np.ndarray:
    """Downsize a supersampled float sprite and its 0..1 coverage to a uint8 BGRA image."""
    h, w = bgr.shape[0] // factor, bgr.shape[1] // factor
    small = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
    a = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA)
    out = np.empty((h, w, 4), np.uint8)
    out[..., :3] = np.clip(small, 0, 255)
    out[..., 3] = np.clip(a * 255, 0, 255)
    return out


def capsule(img: np.ndarray, p0: tuple[float, float], p1: tuple[float, float], width: float,
            color: float | tuple[float, ...]) -> None:
    """A thick segment with round ends (an arm, a finger, a sausage)."""
    c = color if isinstance(color, tuple) else (color,) * (img.shape[2] if img.ndim == 3 else 1)
    a = (int(round(p0[0] * ONE)), int(round(p0[1] * ONE)))
    b = (int(round(p1[0] * ONE)), int(round(p1[1] * ONE)))
    t = max(1, int(round(width)))
    cv2.line(img, a, b, c, t, cv2.LINE_AA, SHIFT)
    r = int(round(width / 2 * ONE))
    cv2.circle(img, a, r, c, -1, cv2.LINE_AA, SHIFT)
    cv2.circle(img, b, r, c, -1, cv2.LINE_AA, SHIFT)

"""What the camera does to the scene: lighting drift, camera shake, motion blur, sensor noise, JPEG artefacts.

All of it is cheap per frame (the budget is ~66 ms per 1280x720 frame on one core, rendering included):

* lighting: a 3x3 per-channel gain grid (global brightness drifting on slow sinusoids, a drifting left-right /
  top-bottom gradient, the lamps' colour tint) upsampled bilinearly and applied with one saturating
  ``cv2.multiply`` on uint8 (gain stored as ``128 * g``);
* shake: an integer pixel offset from a sum of sinusoids plus rare jolts; the frame is a crop of a padded
  static layer, so shaking costs nothing;
* motion blur: applied only to the moving hand and carried tray, see :func:`motion_blur`;
* noise: a pre-drawn Gaussian noise tile, cropped at a random offset each frame and added/subtracted with
  saturating uint8 arithmetic (no per-frame random field);
* JPEG: an encode/decode round trip at the line's quality (what an IP camera's MJPEG stream looks like).

Every random choice comes from ``rng`` seeded by ``(seed, frame index)``, so a frame looks the same whether or
not the frames around it are rendered.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from sim.lines import LinePreset

NOISE_PAD = 64


class CameraEffects:
    def __init__(self, preset: LinePreset, width: int, height: int, rng: np.random.Generator) -> None:
        self.preset = preset
        self.width, self.height = width, height
        self.phases = rng.uniform(0, 2 * math.pi, 12)
        self.k = width / 1280.0
        tile = rng.normal(0, preset.noise_sigma, (height + NOISE_PAD, width + NOISE_PAD, 3)).astype(np.float32)
        self.noise_pos = np.clip(tile, 0, 255).astype(np.uint8)
        self.noise_neg = np.clip(-tile, 0, 255).astype(np.uint8)
        self.jolts = rng.uniform(0, 1, 2000)  # per-second chance table for shake jolts

    def shake(self, t: float) -> tuple[int, int]:
        """Integer camera offset (px) at time ``t``."""
        p = self.phases
        amp = self.preset.shake_px * self.k
        dx = amp * (0.6 * math.sin(2 * math.pi * 0.7 * t + p[0]) + 0.4 * math.sin(2 * math.pi * 2.3 * t + p[1]))
        dy = amp * (0.6 * math.sin(2 * math.pi * 0.5 * t + p[2]) + 0.4 * math.sin(2 * math.pi * 1.9 * t + p[3]))
        sec = int(t) % len(self.jolts)
        if self.jolts[sec] < 0.05:  # a jolt in ~1 of 20 seconds: someone bumps the camera pole
            u = t - int(t)
            decay = math.exp(-6 * u) * math.sin(2 * math.pi * 6 * u)
            dx += 3 * amp * decay
            dy += 2 * amp * decay
        return int(round(dx)), int(round(dy))

    def lighting(self, img: np.ndarray, t: float) -> None:
        """Apply the drifting lighting in place (uint8 BGR)."""
        p = self.phases
        g = self.preset.brightness * (1 + 0.07 * math.sin(2 * math.pi * t / 41 + p[4])
                                      + 0.03 * math.sin(2 * math.pi * t / 13 + p[5])
                                      + 0.008 * math.sin(2 * math.pi * t * 1.7 + p[6]))
        gx = 0.08 * math.sin(2 * math.pi * t / 53 + p[7])
        gy = 0.06 * math.sin(2 * math.pi * t / 67 + p[8])
        lin = np.array([-1.0, 0.0, 1.0])
        grid = g * (1 + gx * lin[None, :] + gy * lin[:, None])
        tint = np.array(self.preset.light_tint)
        gains = np.clip(grid[..., None] * tint[None, None, :] * 128, 0, 255).astype(np.uint8)
        full = cv2.resize(gains, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        cv2.multiply(img, full, dst=img, scale=1 / 128.0)

    def noise(self, img: np.ndarray, rng: np.random.Generator) -> None:
        oy, ox = (int(v) for v in rng.integers(0, NOISE_PAD, 2))
        h, w = self.height, self.width
        cv2.add(img, self.noise_pos[oy:oy + h, ox:ox + w], dst=img)
        oy2, ox2 = (int(v) for v in rng.integers(0, NOISE_PAD, 2))
        cv2.subtract(img, self.noise_neg[oy2:oy2 + h, ox2:ox2 + w], dst=img)

    def jpeg(self, img: np.ndarray) -> np.ndarray:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.preset.jpeg_quality])
        if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
            return img
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def motion_blur(img: np.ndarray, static: np.ndarray, mask: np.ndarray, velocity_px: tuple[float, float]) -> None:
    """Blur the moving pixels of ``img`` (``mask`` 1) along ``velocity_px`` (px per exposure), in place.

    Linear motion blur is a time average: ``out = static * (1 - blur(m)) + blur(img * m)``, where ``static`` is
    what lies behind the moving object. Only the region passed in is touched, so the cost stays small.
    """
    vx, vy = velocity_px
    length = math.hypot(vx, vy)
    if length < 1.5:
        return
    n = int(min(25, math.ceil(length))) | 1
    k = np.zeros((n, n), np.float32)
    c = n // 2
    cv2.line(k, (int(round(c - vx / length * c)), int(round(c - vy / length * c))),
             (int(round(c + vx / length * c)), int(round(c + vy / length * c))), 1.0, 1, cv2.LINE_AA)
    k /= k.sum()
    m = mask.astype(np.float32)
    bm = cv2.filter2D(m, -1, k, borderType=cv2.BORDER_REFLECT)
    moving = cv2.filter2D(img.astype(np.float32) * m[..., None], -1, k, borderType=cv2.BORDER_REFLECT)
    out = static.astype(np.float32) * (1 - bm)[..., None] + moving
    img[:] = np.clip(out, 0, 255).astype(np.uint8)

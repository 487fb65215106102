"""What the camera does to the scene: lighting drift, camera shake, motion blur, sensor noise.

All of it is cheap per frame (the budget is ~66 ms per 1280x720 frame on one core, rendering included):

* lighting: a 5x5 per-channel gain grid (global brightness drifting on slow sinusoids, a drifting left-right /
  top-bottom gradient, lens vignetting, the lamps' colour tint) upsampled bilinearly and applied with one saturating
  ``cv2.multiply`` on uint8 (gain stored as ``128 * g``);
* shake: an integer pixel offset from a sum of sinusoids plus rare jolts; the frame is a crop of a padded
  static layer, so shaking costs nothing;
* motion blur: applied only to the moving hand and carried tray, see :func:`motion_blur`;
* noise: a pre-drawn Gaussian noise tile, cropped at a random offset each frame and added/subtracted with
  saturating uint8 arithmetic (no per-frame random field);
* compression artefacts are not added here: the video gets the MPEG-4 encoder's own, and sampled frames are
  written as JPEG at the line's ``jpeg_quality`` (65-85, like an IP camera's snapshots), which gives training
  images real JPEG blocking and ringing at no extra cost (and keeps the bundled demo video small).

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
        # noise_sigma is given at 1280 px; a smaller frame is a binned (averaged) sensor: proportionally less noise
        sigma = preset.noise_sigma * min(1.0, max(0.35, self.k))
        tile = rng.normal(0, sigma, (height + NOISE_PAD, width + NOISE_PAD, 3)).astype(np.float32)
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
        lin = np.linspace(-1.0, 1.0, 5)
        vignette = 1 - 0.12 * (lin[None, :] ** 2 + lin[:, None] ** 2) / 2  # lens fall-off towards the corners
        grid = g * (1 + gx * lin[None, :] + gy * lin[:, None]) * vignette
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


def motion_blur(img: np.ndarray, static: np.ndarray, mask: np.ndarray, velocity_px: tuple[float, float]) -> None:
    """Blur the moving pixels of ``img`` (``mask`` true) along ``velocity_px`` (px per exposure), in place.

    Linear motion blur is a time average over the exposure: ``out = static * (1 - mean(m)) + mean(img * m)``,
    where ``static`` is what lies behind the moving object and the means run over copies of the moving layer
    shifted along the velocity (3..9 taps). Integer arithmetic on the region passed in keeps it to a few ms.
    """
    vx, vy = velocity_px
    length = math.hypot(vx, vy)
    if length < 1.5:
        return
    taps = int(min(9, max(3, round(length))))
    offsets = [(int(round(vx * u)), int(round(vy * u))) for u in np.linspace(-0.5, 0.5, taps)]
    p = max(max(abs(dx), abs(dy)) for dx, dy in offsets)
    h, w = mask.shape
    m8 = mask.astype(np.uint8) * 255
    moving = cv2.bitwise_and(img, img, mask=m8)
    moving_p = cv2.copyMakeBorder(moving, p, p, p, p, cv2.BORDER_CONSTANT, value=0)
    mask_p = cv2.copyMakeBorder(m8, p, p, p, p, cv2.BORDER_CONSTANT, value=0)
    acc = np.zeros((h, w, 3), np.uint16)
    cover = np.zeros((h, w), np.uint16)
    for dx, dy in offsets:
        acc += moving_p[p - dy:p - dy + h, p - dx:p - dx + w]
        cover += mask_p[p - dy:p - dy + h, p - dx:p - dx + w]
    blurred = (acc // taps).astype(np.uint8)
    keep = cv2.merge([(255 - cover // taps).astype(np.uint8)] * 3)
    img[:] = cv2.add(cv2.multiply(static, keep, scale=1 / 255.0), blurred)

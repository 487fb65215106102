"""The plastic bin's textures, and the slot grid the worker fills.

Bin model: an open box ``bin_depth_cm`` deep (see :mod:`sim.bin_walls` for the solid and its walls). Its textures
live in bin-local plane coordinates (centre in the middle of the canvas): the *floor layer* (ribbed floor and
the lower part of the sloping inner walls, later holding the trays) and the *rim layer* (the top of the walls,
the brightest part, with hand-hold slots on the short sides). The floor holds a grid of ``rows x cols`` slots
of ``tray size + gap``; trays are painted into the floor layer when they are placed, so a static bin costs a few
warps only when something changed.

``BinCanvas.shadow`` is the blurred footprint used to darken what lies under the bin's edge (a drop shadow).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from sim.draw import capsule, fill, fractal_noise, mask_of, rounded_rect, to_bgra
from sim.lines import LinePreset

RIM_CM = 2.0
SLOPE_CM = 1.4
MARGIN_CM = 3.0  # canvas margin around the bin for its shadow
SUPERSAMPLE = 2


@dataclass(frozen=True)
class BinGeometry:
    """Sizes of one line's bin in cm (bin-local coordinates: centre at 0, x along the long side)."""

    rows: int
    cols: int
    tray_w: float
    tray_h: float
    gap: float

    @property
    def floor_size(self) -> tuple[float, float]:
        return self.cols * (self.tray_w + self.gap) + self.gap, self.rows * (self.tray_h + self.gap) + self.gap

    @property
    def outer_size(self) -> tuple[float, float]:
        fw, fh = self.floor_size
        return fw + 2 * (RIM_CM + SLOPE_CM), fh + 2 * (RIM_CM + SLOPE_CM)

    def slot_center(self, slot: int) -> tuple[float, float]:
        """Centre of slot ``slot`` (row-major from the top-left) in bin-local cm."""
        r, c = divmod(slot, self.cols)
        fw, fh = self.floor_size
        return (-fw / 2 + self.gap + c * (self.tray_w + self.gap) + self.tray_w / 2,
                -fh / 2 + self.gap + r * (self.tray_h + self.gap) + self.tray_h / 2)

    @classmethod
    def of(cls, preset: LinePreset) -> BinGeometry:
        return cls(preset.rows, preset.cols, preset.tray_size_cm[0], preset.tray_size_cm[1], preset.slot_gap_cm)


@dataclass
class BinCanvas:
    """A bin painted in its own plane, ready to receive trays and to be warped into frames.

    ``bgra``: uint8 floor layer, alpha = inside the rim; ``rim``: uint8 rim layer, alpha = the rim ring;
    ``shadow``: float32 0..1 blurred footprint; ``wall_color``: BGR of the outer walls; ``px_per_cm``: canvas
    scale; canvas pixel (u, v) is bin-local cm ``((u - cx) / px_per_cm, (v - cy) / px_per_cm)``.
    """

    bgra: np.ndarray
    rim: np.ndarray
    shadow: np.ndarray
    wall_color: tuple[float, float, float]
    px_per_cm: float
    version: int = 0

    @property
    def center(self) -> tuple[float, float]:
        return self.bgra.shape[1] / 2.0, self.bgra.shape[0] / 2.0

    def canvas_to_local(self) -> np.ndarray:
        """3x3 matrix: canvas px -> bin-local cm."""
        cx, cy = self.center
        k = 1.0 / self.px_per_cm
        return np.array([[k, 0, -cx * k], [0, k, -cy * k], [0, 0, 1.0]])

    def paste(self, sprite: np.ndarray, shadow: np.ndarray, x_cm: float, y_cm: float, angle_deg: float) -> None:
        """Place a tray sprite centred at bin-local (x_cm, y_cm), rotated; darken the floor under its edge."""
        cx, cy = self.center
        px, py = cx + x_cm * self.px_per_cm, cy + y_cm * self.px_per_cm
        h, w = self.bgra.shape[:2]
        for src, is_shadow in ((shadow, True), (sprite, False)):
            sh, sw = src.shape[:2]
            off = (1.0, 1.5) if is_shadow else (0.0, 0.0)
            M = cv2.getRotationMatrix2D((sw / 2, sh / 2), -angle_deg, 1.0)
            M[:, 2] += (px + off[0] * self.px_per_cm * 0.3 - sw / 2, py + off[1] * self.px_per_cm * 0.3 - sh / 2)
            x0 = max(0, int(math.floor(px - max(sw, sh) * 0.75)))
            y0 = max(0, int(math.floor(py - max(sw, sh) * 0.75)))
            x1 = min(w, int(math.ceil(px + max(sw, sh) * 0.75)))
            y1 = min(h, int(math.ceil(py + max(sw, sh) * 0.75)))
            M[:, 2] -= (x0, y0)
            warped = cv2.warpAffine(src, M, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            roi = self.bgra[y0:y1, x0:x1, :3].astype(np.float32)
            if is_shadow:
                roi *= (1.0 - 0.45 * warped)[..., None]
            else:
                a = warped[..., 3:4].astype(np.float32) / 255.0
                roi = roi * (1 - a) + warped[..., :3].astype(np.float32) * a
            self.bgra[y0:y1, x0:x1, :3] = np.clip(roi, 0, 255).astype(np.uint8)
        self.version += 1


def paint_bin(preset: LinePreset, rng: np.random.Generator, px_per_cm: float) -> BinCanvas:
    """An empty bin of ``preset``'s colour and layout (with wear: scuffs, dirt, colour variation)."""
    geo = BinGeometry.of(preset)
    s = px_per_cm * SUPERSAMPLE
    ow, oh = geo.outer_size
    W = int(math.ceil((ow + 2 * MARGIN_CM) * s / SUPERSAMPLE)) * SUPERSAMPLE
    H = int(math.ceil((oh + 2 * MARGIN_CM) * s / SUPERSAMPLE)) * SUPERSAMPLE
    cx, cy = W / 2, H / 2
    shape = (H, W)
    base = np.array(preset.bin_color, np.float32) * rng.uniform(0.92, 1.08)
    img = np.zeros(shape + (3,), np.float32)
    outer = rounded_rect(ow * s, oh * s, 3.0 * s, cx, cy)
    alpha = mask_of(shape, outer)
    img[:] = np.clip(base * 1.25 + 10, 0, 255)  # rim
    # hand-hold slots in the rim of the short sides
    for side in (-1, 1):
        fill(img, rounded_rect(RIM_CM * 0.5 * s, oh * 0.35 * s, RIM_CM * 0.25 * s, cx + side * (ow / 2 - RIM_CM * 0.5)
                               * s, cy), tuple(float(c) for c in base * 0.25))
    inner = rounded_rect((ow - 2 * RIM_CM) * s, (oh - 2 * RIM_CM) * s, 2.0 * s, cx, cy)
    fill(img, inner, tuple(float(c) for c in base * 0.7))
    fw, fh = geo.floor_size
    floor_pts = rounded_rect(fw * s, fh * s, 1.2 * s, cx, cy)
    slope = mask_of(shape, inner)
    floor = mask_of(shape, floor_pts)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    # inner walls: lit from the top-left, so the far-left walls are brighter than the near-right ones
    wall_shade = 1 + 0.3 * ((cx - xx) / (ow * s) + (cy - yy) / (oh * s))
    img *= (1 + (wall_shade - 1) * np.clip(slope - floor, 0, 1))[..., None]
    floor_col = np.empty(shape + (3,), np.float32)
    floor_col[:] = base * 0.85
    ribs = np.sin(xx / (3.0 * s) * 2 * math.pi) > 0.9  # moulded ribs across the floor
    floor_col *= np.where(ribs, 0.9, 1.0).astype(np.float32)[..., None]
    # the walls shade the floor next to them, most on the lamps' side (top-left): a cheap ambient occlusion
    d_left, d_top = (xx - (cx - fw * s / 2)) / s, (yy - (cy - fh * s / 2)) / s
    d_right, d_bottom = ((cx + fw * s / 2) - xx) / s, ((cy + fh * s / 2) - yy) / s
    occlusion = (0.16 * np.exp(-np.clip(d_top, 0, None) / 2.5) + 0.13 * np.exp(-np.clip(d_left, 0, None) / 2.5)
                 + 0.06 * np.exp(-np.clip(d_bottom, 0, None) / 2.5) + 0.06 * np.exp(-np.clip(d_right, 0, None) / 2.5))
    floor_col *= (1 - occlusion)[..., None]
    img = img * (1 - floor[..., None]) + floor_col * floor[..., None]
    # wear: scuffs on the rim and floor, dirt, colour variation
    scuffs = np.zeros(shape, np.float32)
    for _ in range(int(rng.integers(10, 25))):
        x0, y0 = rng.uniform(0, W), rng.uniform(0, H)
        a = rng.uniform(0, math.pi)
        ln = rng.uniform(1, 6) * s
        capsule(scuffs, (x0, y0), (x0 + ln * math.cos(a), y0 + ln * math.sin(a)), 0.1 * s, 1.0)
    img += (scuffs * 35)[..., None]
    img *= (1 + 0.06 * fractal_noise(rng, shape, (20 * s, 4 * s)))[..., None]
    bgra = to_bgra(img, mask_of(shape, inner), SUPERSAMPLE)
    rim = to_bgra(img, np.clip(alpha - mask_of(shape, inner), 0, 1), SUPERSAMPLE)
    # drop shadow: the footprint, blurred and shifted down-right (lamps above-left)
    small_alpha = cv2.resize(alpha, (bgra.shape[1], bgra.shape[0]), interpolation=cv2.INTER_AREA)
    shift = np.float32([[1, 0, 0.8 * px_per_cm], [0, 1, 1.2 * px_per_cm]])
    shadow = cv2.warpAffine(small_alpha, shift, (small_alpha.shape[1], small_alpha.shape[0]))
    shadow = cv2.GaussianBlur(shadow, (0, 0), 1.2 * px_per_cm)
    wall = tuple(float(c) for c in np.clip(base * 1.05, 0, 255))
    return BinCanvas(bgra=bgra, rim=rim, shadow=shadow, wall_color=wall, px_per_cm=px_per_cm)

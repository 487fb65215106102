"""A packed food tray seen from above, painted once per variant as a BGRA sprite.

Model of the tray (outside in): a rounded-rectangle flange (the rim, brighter: it faces the lamps), the well's
sloped inner wall (darker, with a gradient), the well floor holding the product (steak, chicken, sausages,
mince or salmon, each with its own shapes and texture), a stretched film over the well (a faint milky layer,
a diagonal specular streak, small wrinkles near the corners) and a printed label with a coloured header, text
lines and a barcode. A thin dark outline keeps neighbouring trays separable, as real tray rims are.

The sprite's long side is its x axis; ``px_per_cm`` is the scale it will be composited at (no later upsampling).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from sim.draw import blend, capsule, fill, fractal_noise, mask_of, rounded_rect, smooth_noise, to_bgra
from sim.lines import LinePreset

SUPERSAMPLE = 2

CONTENT_COLORS: dict[str, tuple[float, float, float]] = {
    "steak": (45, 45, 150),
    "chicken": (165, 178, 228),
    "sausage": (70, 95, 165),
    "mince": (80, 80, 190),
    "salmon": (80, 140, 245),
}


def _blob(rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float, angle: float) -> np.ndarray:
    """An irregular rounded blob (a piece of meat): an ellipse with smoothly noisy radius."""
    n = 48
    a = np.linspace(0, 2 * math.pi, n, endpoint=False)
    k = np.arange(1, 4)[:, None]
    wobble = 1 + (rng.uniform(-0.08, 0.08, (3, 1)) * np.cos(k * a + rng.uniform(0, 6.3, (3, 1)))).sum(0)
    x, y = rx * wobble * np.cos(a), ry * wobble * np.sin(a)
    c, s = math.cos(angle), math.sin(angle)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], 1)


def _paint_content(img: np.ndarray, well: np.ndarray, kind: str, rng: np.random.Generator,
                   cx: float, cy: float, w: float, h: float) -> None:
    """Paint the product inside the well (``well`` is the floor's coverage mask)."""
    shape = img.shape[:2]
    base = np.array(CONTENT_COLORS[kind], np.float32) * rng.uniform(0.9, 1.08, 3).astype(np.float32)
    layer = np.zeros(shape, np.float32)
    if kind in ("steak", "chicken", "salmon"):
        pieces = {"steak": rng.integers(1, 3), "chicken": rng.integers(2, 4), "salmon": 2}[kind]
        for i in range(int(pieces)):
            off = (i - (pieces - 1) / 2) * w / pieces
            fill(layer, _blob(rng, cx + off + rng.normal(0, w * 0.03), cy + rng.normal(0, h * 0.04),
                              w / pieces * 0.5, h * rng.uniform(0.36, 0.44), rng.uniform(-0.3, 0.3)), 1.0)
    elif kind == "sausage":
        n = int(rng.integers(4, 7))
        r = min(h * 0.8 / n / 2 * 1.05, w * 0.1)
        for i in range(n):
            y = cy + (i - (n - 1) / 2) * 2 * r * 0.98
            capsule(layer, (cx - w * 0.36, y + rng.normal(0, 1)), (cx + w * 0.36, y + rng.normal(0, 1)), 2 * r, 1.0)
    else:  # mince: a rounded block filling the well
        fill(layer, rounded_rect(w * 0.82, h * 0.78, h * 0.3, cx, cy), 1.0)
    layer *= well
    tex = fractal_noise(rng, shape, (w / 6, w / 20))
    color = np.empty(shape + (3,), np.float32)
    color[:] = base
    color *= (1 + 0.18 * tex)[..., None]
    if kind in ("steak", "salmon", "mince"):
        # fat: marbling streaks (steak, mince) or the white lines across a fillet (salmon)
        fat = np.zeros(shape, np.float32)
        streaks = 9 if kind == "salmon" else int(rng.integers(5, 10))
        for i in range(streaks):
            if kind == "salmon":
                x0 = cx - w * 0.45 + i * w * 0.1
                pts = [(x0 + rng.normal(0, 1), cy - h * 0.5), (x0 + w * 0.12, cy + h * 0.5)]
            else:
                x0, y0 = cx + rng.normal(0, w * 0.25), cy + rng.normal(0, h * 0.2)
                a = rng.uniform(0, math.pi)
                ln = rng.uniform(0.1, 0.3) * w
                pts = [(x0, y0), (x0 + ln * math.cos(a), y0 + ln * math.sin(a))]
            capsule(fat, pts[0], pts[1], rng.uniform(0.006, 0.02) * w, 1.0)
        fat = cv2.GaussianBlur(fat, (0, 0), w * 0.006)
        if kind == "mince":
            fat = np.clip(fat + 0.5 * np.clip(smooth_noise(rng, shape, w / 60), 0, 1), 0, 1)
        blend(color, (200, 205, 235), fat * 0.75)
    # shade towards the edges of each piece: rounded, not flat
    edge = cv2.GaussianBlur(layer, (0, 0), w * 0.025)
    color *= (0.65 + 0.35 * edge)[..., None]
    blend(img, color, layer)


def _paint_label(img: np.ndarray, rng: np.random.Generator, cx: float, cy: float, w: float, h: float,
                 paper: tuple[int, int, int], header: tuple[float, float, float]) -> None:
    lw, lh = w * rng.uniform(0.3, 0.4), h * rng.uniform(0.26, 0.34)
    lx = cx + rng.choice([-1, 1]) * (w / 2 - lw / 2 - w * 0.1)
    ly = cy + rng.choice([-1, 0, 1]) * (h / 2 - lh / 2 - h * 0.12)
    fill(img, rounded_rect(lw, lh, lh * 0.06, lx, ly), tuple(float(c) for c in paper))
    x0, y0 = lx - lw / 2, ly - lh / 2
    fill(img, rounded_rect(lw, lh * 0.22, 0, lx, y0 + lh * 0.11), header)
    for row in range(3):  # text lines
        y = y0 + lh * (0.32 + 0.13 * row)
        x = x0 + lw * 0.08
        while x < x0 + lw * 0.6:
            word = rng.uniform(0.05, 0.14) * lw
            fill(img, rounded_rect(word, lh * 0.06, 0, x + word / 2, y), (60, 60, 60))
            x += word + lw * 0.03
    bx = x0 + lw * 0.65
    while bx < x0 + lw * 0.93:  # barcode
        bw = rng.choice([0.008, 0.016, 0.024]) * lw
        fill(img, rounded_rect(bw, lh * 0.4, 0, bx + bw / 2, y0 + lh * 0.62), (20, 20, 20))
        bx += bw + rng.choice([0.008, 0.016]) * lw
    fill(img, rounded_rect(lw * 0.3, lh * 0.12, 0, x0 + lw * 0.25, y0 + lh * 0.82), (30, 30, 30))  # price


def paint_tray(preset: LinePreset, rng: np.random.Generator, px_per_cm: float) -> np.ndarray:
    """One tray variant as a uint8 BGRA sprite, long side along x."""
    s = px_per_cm * SUPERSAMPLE
    L, S = preset.tray_size_cm
    w, h = L * s, S * s
    pad = 2 * SUPERSAMPLE
    W, Hh = int(math.ceil(w)) + 2 * pad, int(math.ceil(h)) + 2 * pad
    cx, cy = W / 2, Hh / 2
    shape = (Hh, W)
    tray = np.array(preset.tray_colors[int(rng.integers(len(preset.tray_colors)))], np.float32)
    img = np.zeros(shape + (3,), np.float32)
    outer = rounded_rect(w, h, 1.5 * s, cx, cy)
    alpha = mask_of(shape, outer)
    img[:] = tray * 0.55  # outline colour, visible as the outermost pixel ring
    flange = 0.8 * s
    fill(img, rounded_rect(w - 0.12 * s, h - 0.12 * s, 1.45 * s, cx, cy), tuple(float(c) for c in
                                                                                np.clip(tray * 1.12 + 12, 0, 255)))
    wall = rounded_rect(w - 2 * flange, h - 2 * flange, 1.1 * s, cx, cy)
    fill(img, wall, tuple(float(c) for c in tray * 0.72))
    floor_pts = rounded_rect(w - 2 * flange - 1.2 * s, h - 2 * flange - 1.2 * s, 0.9 * s, cx + 0.1 * s, cy + 0.15 * s)
    floor = mask_of(shape, floor_pts)
    blend(img, tuple(float(c) for c in tray * 0.9), floor)
    # gradient across the well wall: lamps above-left
    yy, xx = np.mgrid[0:Hh, 0:W].astype(np.float32)
    grad = ((xx - cx) / w + (yy - cy) / h) * 0.25
    wall_m = mask_of(shape, wall) - floor
    img *= (1 + grad * np.clip(wall_m, 0, 1))[..., None]
    _paint_content(img, floor, preset.content, rng, cx + 0.1 * s, cy + 0.15 * s, w - 2 * flange - 1.2 * s,
                   h - 2 * flange - 1.2 * s)
    # film: milky layer + a diagonal specular streak + a few wrinkles, all limited to the well
    film = mask_of(shape, wall)
    blend(img, (235, 235, 235), film * 0.07)
    d = ((xx - cx) * math.cos(rng.uniform(0.5, 1.0)) + (yy - cy) * math.sin(rng.uniform(0.5, 1.0))) / w
    streak = np.exp(-(((d - rng.uniform(-0.3, 0.3)) / rng.uniform(0.04, 0.09)) ** 2)) * rng.uniform(0.25, 0.45)
    blend(img, (250, 250, 250), film * streak.astype(np.float32))
    wrinkles = np.zeros(shape, np.float32)
    for _ in range(int(rng.integers(3, 7))):
        corner = (cx + rng.choice([-1, 1]) * (w / 2 - flange * 1.6), cy + rng.choice([-1, 1]) * (h / 2 - flange * 1.6))
        a = rng.uniform(0, 2 * math.pi)
        ln = rng.uniform(0.5, 1.5) * s
        capsule(wrinkles, corner, (corner[0] + ln * math.cos(a), corner[1] + ln * math.sin(a)), 0.12 * s, 1.0)
    blend(img, (250, 250, 250), film * wrinkles * 0.5)
    header = tuple(float(c) for c in rng.choice([(40, 40, 200), (160, 80, 20), (40, 140, 40), (20, 120, 220)]))
    _paint_label(img, rng, cx, cy, w, h, preset.label_color, header)
    img *= (1 + 0.04 * smooth_noise(rng, shape, 6 * s))[..., None]
    return to_bgra(img, alpha, SUPERSAMPLE)


def tray_shadow(sprite: np.ndarray, blur_px: float) -> np.ndarray:
    """A soft shadow mask (float32 0..1, padded by ``3*blur_px``) cast by a sprite's footprint."""
    pad = int(math.ceil(3 * blur_px)) + 1
    a = cv2.copyMakeBorder(sprite[..., 3], pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    return cv2.GaussianBlur(a.astype(np.float32) / 255.0, (0, 0), blur_px)

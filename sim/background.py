"""The static background: the floor or conveyor around the bin station and the table the bins stand on.

Painted once per video in image space, slightly larger than the frame (``margin`` px on every side) so camera
shake is a crop. Geometric features (table edges, tile grout, belt ribs, safety stripes) are laid out on the
table plane and projected with the camera homography, so they share the scene's perspective.
"""

from __future__ import annotations

import cv2
import numpy as np

from sim.draw import fill, fractal_noise, rounded_rect, smooth_noise
from sim.lines import LinePreset
from sim.pinhole import project


def _line(img: np.ndarray, H: np.ndarray, a: tuple[float, float], b: tuple[float, float], color: tuple[float, ...],
          width_px: int) -> None:
    p = project(H, np.array([a, b]))
    cv2.line(img, (int(p[0, 0] * 16), int(p[0, 1] * 16)), (int(p[1, 0] * 16), int(p[1, 1] * 16)), color,
             max(1, width_px), cv2.LINE_AA, 4)


def paint_background(preset: LinePreset, H: np.ndarray, width: int, height: int, margin: int,
                     table_half_cm: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Background as uint8 BGR of shape ``(height + 2 margin, width + 2 margin, 3)``.

    ``H`` maps plane cm to the *padded* image; ``table_half_cm`` is the table's half size around the bin.
    """
    h, w = height + 2 * margin, width + 2 * margin
    shape = (h, w)
    k = width / 1280.0
    img = np.empty(shape + (3,), np.float32)
    img[:] = preset.background_color
    kind = preset.background
    if kind == "concrete":
        img *= (1 + 0.12 * fractal_noise(rng, shape, (200 * k, 50 * k, 8 * k)))[..., None]
    elif kind == "steel":
        streak = cv2.resize(rng.standard_normal((h, max(2, w // 60))).astype(np.float32), (w, h),
                            interpolation=cv2.INTER_LINEAR)
        img *= (1 + 0.05 * streak + 0.08 * smooth_noise(rng, shape, 300 * k))[..., None]
    elif kind == "belt":
        img *= (1 + 0.08 * fractal_noise(rng, shape, (60 * k, 6 * k)))[..., None]
        for y in np.arange(-120, 121, 7.0):
            _line(img, H, (-150, y), (150, y), tuple(float(c) * 0.75 for c in preset.background_color), int(2 * k))
    elif kind == "epoxy":
        img *= (1 + 0.05 * fractal_noise(rng, shape, (150 * k, 20 * k)))[..., None]
        flakes = (smooth_noise(rng, shape, 2.5 * k) > 1.9).astype(np.float32)
        img += (flakes * 40)[..., None]
    else:  # tiles
        img *= (1 + 0.04 * fractal_noise(rng, shape, (100 * k, 10 * k)))[..., None]
        grout = tuple(float(c) * 0.7 for c in preset.background_color)
        for v in np.arange(-150, 151, 15.0):
            _line(img, H, (v, -150), (v, 150), grout, int(2 * k))
            _line(img, H, (-150, v), (150, v), grout, int(2 * k))
    # a yellow safety stripe on the floor, away from the table
    tw, th = table_half_cm
    stripe_y = th + 12
    for x in np.arange(-150, 150, 10.0):
        q = np.array([[x, stripe_y], [x + 5, stripe_y], [x + 9, stripe_y + 5], [x + 4, stripe_y + 5]])
        fill(img, project(H, q), (30, 190, 230))
    # the table: its shadow, its top, a bright front edge
    top = rounded_rect(2 * tw, 2 * th, 2.0)
    shadow = np.zeros(shape, np.float32)
    fill(shadow, project(H, top + (1.5, 2.5)), 1.0)
    shadow = cv2.GaussianBlur(shadow, (0, 0), 6 * k + 1)
    img *= (1 - 0.35 * shadow)[..., None]
    table = np.zeros(shape, np.float32)
    fill(table, project(H, top), 1.0)
    tcol = np.empty(shape + (3,), np.float32)
    tcol[:] = preset.table_color
    tcol *= (1 + 0.06 * fractal_noise(rng, shape, (120 * k, 15 * k)))[..., None]
    img = img * (1 - table[..., None]) + tcol * table[..., None]
    edge = rounded_rect(2 * tw - 1.0, 2 * th - 1.0, 1.5)
    cv2.polylines(img, [np.round(project(H, edge) * 16).astype(np.int32)], True,
                  tuple(min(255.0, c * 1.2 + 20) for c in preset.table_color), max(1, int(2 * k)), cv2.LINE_AA, 4)
    # a soft light pool: brighter in the middle of the station
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    pool = np.exp(-(((xx - w / 2) / (0.8 * w)) ** 2 + ((yy - h / 2) / (0.8 * h)) ** 2))
    img *= (0.8 + 0.25 * pool)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)

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
    _clutter(img, H, rng, table_half_cm, preset.table_color)
    # a soft light pool: brighter in the middle of the station
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    pool = np.exp(-(((xx - w / 2) / (0.8 * w)) ** 2 + ((yy - h / 2) / (0.8 * h)) ** 2))
    img *= (0.8 + 0.25 * pool)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _clutter(img: np.ndarray, H: np.ndarray, rng: np.random.Generator, table_half_cm: tuple[float, float],
             table_color: tuple[int, int, int]) -> None:
    """0-3 everyday objects on the table around the bin (tape roll, marker, paper, knife): things a detector
    must learn are *not* trays. Placed in the band between the bin and the table edge."""
    tw, th = table_half_cm
    for _ in range(int(rng.integers(0, 4))):
        side = int(rng.integers(4))
        if side < 2:  # left / right band, 16 cm wide
            x = (tw - 8.0) * (1 if side else -1) + float(rng.uniform(-3, 3))
            y = float(rng.uniform(-th + 8, th - 8))
        else:  # top / bottom band, 12 cm high
            x = float(rng.uniform(-tw + 10, tw - 10))
            y = (th - 6.0) * (1 if side == 3 else -1) + float(rng.uniform(-2, 2))
        a = float(rng.uniform(0, np.pi))
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])

        def at(pts: np.ndarray, x: float = x, y: float = y, rot: np.ndarray = rot) -> np.ndarray:
            return project(H, pts @ rot.T + (x, y))

        kind = int(rng.integers(4))
        if kind == 0:  # tape roll
            ring = np.array([[np.cos(t), np.sin(t)] for t in np.linspace(0, 2 * np.pi, 32, endpoint=False)])
            fill(img, at(ring * 5.0), (60, 140, 190))
            fill(img, at(ring * 3.6), tuple(float(c) for c in table_color))  # the table through the core
        elif kind == 1:  # marker pen with a cap
            color = [(30, 30, 30), (160, 60, 20), (30, 30, 170)][int(rng.integers(3))]
            fill(img, at(rounded_rect(13.0, 1.6, 0.8)), (235, 235, 235))
            fill(img, at(rounded_rect(4.0, 1.8, 0.8, 5.0, 0.0)), color)
        elif kind == 2:  # a sheet of paper (a production list)
            fill(img, at(rounded_rect(14.0, 10.0, 0.2)), (238, 240, 240))
            for r in range(5):
                fill(img, at(rounded_rect(float(rng.uniform(6, 11)), 0.5, 0.1, -1.0, -3.5 + 1.6 * r)), (90, 90, 90))
        else:  # knife
            fill(img, at(np.array([[0.0, -1.3], [14.0, -0.6], [15.0, 0.0], [14.0, 1.0], [0.0, 1.0]])),
                 (200, 205, 210))
            fill(img, at(rounded_rect(10.0, 2.4, 1.0, -5.2, 0.0)), (40, 40, 45))

"""Packaging-line presets: everything that makes one simulated line look different from another.

A detector trained on ``line-1..line-3`` and tested on ``line-4``/``line-5`` should meet a new camera angle, new
tray, bin and glove colours, a new floor and a new pace, which is what a new plant line looks like. All sizes
are in centimetres on the table plane; colours are BGR (OpenCV order).

Tray counts: a bin has ``rows x cols`` slots; each bin's true count is drawn uniformly from
``trays_per_bin`` (clipped to the slot count), so bins are not always full and counting is not trivial.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from edge_app.errors import EdgeAppError

BGR = tuple[int, int, int]


@dataclass(frozen=True)
class LinePreset:
    """How one line looks and behaves. See the module docstring for units."""

    name: str
    # camera: tilt away from straight down, yaw (bin rotation in the image), roll, height above the bin
    tilt_deg: float
    yaw_deg: float
    roll_deg: float
    camera_height_cm: float
    # bin layout
    rows: int
    cols: int
    tray_size_cm: tuple[float, float]  # (long side, short side); long side runs along the bin's x axis
    slot_gap_cm: float
    trays_per_bin: tuple[int, int]
    fill_rate_s: float  # mean seconds per tray
    # look
    bin_color: BGR
    tray_colors: tuple[BGR, ...]
    content: str  # "steak", "chicken", "sausage", "mince", "salmon"
    label_color: BGR
    background: str  # "concrete", "steel", "belt", "epoxy", "tiles"
    background_color: BGR
    table_color: BGR
    glove_color: BGR
    sleeve_color: BGR
    light_tint: tuple[float, float, float]  # per-channel gain (B, G, R): colour temperature of the lamps
    brightness: float
    noise_sigma: float  # sensor noise, grey levels at 1280 px width
    jpeg_quality: int
    hand_side: str  # edge the worker's arm comes from: "left", "right", "bottom", "top"
    bin_from: str  # edge the next bin slides in from
    shake_px: float  # camera shake amplitude at 1280 px width
    bin_depth_cm: float = 14.0  # rim height above the bin floor: walls show in perspective and hide nearby trays


PRESETS: dict[str, LinePreset] = {
    p.name: p
    for p in (
        LinePreset(
            name="line-1", tilt_deg=12, yaw_deg=0, roll_deg=0, camera_height_cm=150,
            rows=3, cols=4, tray_size_cm=(15.0, 11.0), slot_gap_cm=1.6, trays_per_bin=(8, 12), fill_rate_s=2.5,
            bin_color=(170, 95, 25), tray_colors=((38, 36, 34), (30, 30, 30)), content="steak",
            label_color=(245, 245, 245), background="concrete", background_color=(120, 124, 126),
            table_color=(150, 152, 150), glove_color=(200, 120, 40), sleeve_color=(235, 235, 232),
            light_tint=(1.0, 1.0, 1.0), brightness=1.0, noise_sigma=3.0, jpeg_quality=80,
            hand_side="right", bin_from="top", shake_px=1.5, bin_depth_cm=12.0,
        ),
        LinePreset(
            name="line-2", tilt_deg=20, yaw_deg=5, roll_deg=1, camera_height_cm=140,
            rows=3, cols=3, tray_size_cm=(16.0, 12.5), slot_gap_cm=2.0, trays_per_bin=(6, 9), fill_rate_s=3.5,
            bin_color=(150, 150, 145), tray_colors=((235, 238, 240), (225, 230, 232)), content="chicken",
            label_color=(90, 215, 245), background="steel", background_color=(165, 165, 160),
            table_color=(185, 186, 182), glove_color=(230, 230, 230), sleeve_color=(210, 200, 90),
            light_tint=(1.05, 1.0, 0.93), brightness=1.05, noise_sigma=2.5, jpeg_quality=75,
            hand_side="bottom", bin_from="left", shake_px=1.0, bin_depth_cm=15.0,
        ),
        LinePreset(
            name="line-3", tilt_deg=8, yaw_deg=-8, roll_deg=0, camera_height_cm=170,
            rows=4, cols=4, tray_size_cm=(13.0, 10.0), slot_gap_cm=1.4, trays_per_bin=(10, 16), fill_rate_s=2.0,
            bin_color=(40, 40, 175), tray_colors=((200, 205, 200), (190, 196, 192)), content="sausage",
            label_color=(250, 250, 250), background="belt", background_color=(55, 60, 58),
            table_color=(80, 84, 82), glove_color=(40, 40, 40), sleeve_color=(240, 240, 240),
            light_tint=(0.95, 1.0, 1.05), brightness=0.95, noise_sigma=4.0, jpeg_quality=70,
            hand_side="left", bin_from="right", shake_px=2.0, bin_depth_cm=10.0,
        ),
        LinePreset(
            name="line-4", tilt_deg=25, yaw_deg=10, roll_deg=-1.5, camera_height_cm=120,
            rows=2, cols=3, tray_size_cm=(19.0, 14.0), slot_gap_cm=2.2, trays_per_bin=(4, 6), fill_rate_s=4.0,
            bin_color=(60, 140, 50), tray_colors=((40, 160, 215), (35, 150, 205)), content="mince",
            label_color=(240, 240, 240), background="epoxy", background_color=(90, 120, 95),
            table_color=(170, 172, 168), glove_color=(60, 160, 60), sleeve_color=(230, 228, 225),
            light_tint=(0.92, 1.0, 1.08), brightness=1.1, noise_sigma=3.5, jpeg_quality=85,
            hand_side="bottom", bin_from="top", shake_px=1.2, bin_depth_cm=18.0,
        ),
        LinePreset(
            name="line-5", tilt_deg=15, yaw_deg=-3, roll_deg=2, camera_height_cm=145,
            rows=2, cols=4, tray_size_cm=(15.0, 12.0), slot_gap_cm=1.8, trays_per_bin=(6, 8), fill_rate_s=3.0,
            bin_color=(45, 45, 48), tray_colors=((150, 90, 40), (140, 80, 35)), content="salmon",
            label_color=(235, 245, 250), background="tiles", background_color=(185, 190, 195),
            table_color=(160, 160, 165), glove_color=(130, 60, 150), sleeve_color=(60, 60, 70),
            light_tint=(0.9, 0.98, 1.1), brightness=0.9, noise_sigma=5.0, jpeg_quality=65,
            hand_side="top", bin_from="left", shake_px=2.5, bin_depth_cm=13.0,
        ),
    )
}


def jittered(preset: LinePreset, rng: np.random.Generator) -> LinePreset:
    """The same line on another day: camera re-mounted a little differently, lamps a little brighter or dimmer.

    Different seeds of one line then differ in camera pose and light as well as in the scene, which makes a
    detector trained on several seeds less sensitive to them, while lines stay distinct from each other.
    """
    tint = tuple(float(c * rng.uniform(0.97, 1.03)) for c in preset.light_tint)
    return replace(
        preset,
        tilt_deg=preset.tilt_deg + float(rng.uniform(-2.0, 2.0)),
        yaw_deg=preset.yaw_deg + float(rng.uniform(-3.0, 3.0)),
        roll_deg=preset.roll_deg + float(rng.uniform(-1.0, 1.0)),
        camera_height_cm=preset.camera_height_cm * float(rng.uniform(0.95, 1.05)),
        brightness=preset.brightness * float(rng.uniform(0.92, 1.08)),
        light_tint=(tint[0], tint[1], tint[2]),
    )


def get_preset(name: str) -> LinePreset:
    """The preset called ``name``; a bad name is a one-line user error listing the valid ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise EdgeAppError(f"sim generate: --line: expected one of {', '.join(PRESETS)}, got {name!r}") from None


def with_overrides(
    preset: LinePreset, trays_per_bin: tuple[int, int] | None = None, fill_rate_s: float | None = None
) -> LinePreset:
    """The preset with user overrides applied and checked (min <= max, within the bin's slot count)."""
    slots = preset.rows * preset.cols
    if trays_per_bin is not None:
        lo, hi = trays_per_bin
        if not (1 <= lo <= hi <= slots):
            raise EdgeAppError(
                f"sim generate: --min-trays/--max-trays: expected 1 <= min <= max <= {slots} "
                f"(slots per bin on {preset.name}), got {lo}..{hi}"
            )
        preset = replace(preset, trays_per_bin=(lo, hi))
    if fill_rate_s is not None:
        if not (0.5 <= fill_rate_s <= 60):
            raise EdgeAppError(f"sim generate: --fill-rate: expected 0.5..60 seconds per tray, got {fill_rate_s}")
        preset = replace(preset, fill_rate_s=fill_rate_s)
    return preset

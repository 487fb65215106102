"""Synthetic parts for visual anomaly inspection, with exact ground-truth defect masks.

Three part families, each seen by a fixed camera:

* ``carrier``: a product carrier, a dark metal plate with a regular grid of shiny pins
  (defects: ``bent_pin``, ``missing_pin``, ``debris``);
* ``surface``: a textured surface whose texture differs from part to part, like brushed metal or cast
  plastic (defects: ``scratch``, ``crack``, ``stain``);
* ``label``: a printed label with text, a barcode and a logo (defects: ``misprint``, ``stain``, ``scratch``).

Rendering happens in three stages so that masks are exact:

1. the *canonical* part (in its nominal pose) is drawn once clean and once with the defect; the mask is where
   the two differ (plus the blend weights for soft defects such as stains);
2. *pose*: both image and mask get the same small rigid motion (a fixed camera and a fixture that holds parts to
   within a few pixels and a degree or two);
3. *imaging*: brightness gain/offset drift, a soft illumination gradient and sensor noise are applied to the
   image only.

Everything is driven by one `numpy.random.Generator`, so a seed gives the same images bit for bit.
Output layout (the "folder" layout of the common anomaly-detection libraries)::

    <out>/<part>/train/normal/000.png
    <out>/<part>/test/normal/000.png
    <out>/<part>/test/abnormal/000_bent_pin.png
    <out>/<part>/test/mask/000_bent_pin.png      (255 = defect)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

PARTS: tuple[str, ...] = ("carrier", "surface", "label")
DEFECTS: dict[str, tuple[str, ...]] = {
    "carrier": ("bent_pin", "missing_pin", "debris"),
    "surface": ("scratch", "crack", "stain"),
    "label": ("misprint", "stain", "scratch"),
}
_MARGIN = 24  # canonical canvas is larger than the output so that posing never shows empty borders


@dataclass(frozen=True, slots=True)
class Pose:
    """Small rigid motion of the part in the camera image: shift in pixels, rotation in degrees."""

    dx: float
    dy: float
    angle_deg: float


def random_pose(rng: np.random.Generator, max_shift: float = 5.0, max_angle_deg: float = 2.0) -> Pose:
    return Pose(float(rng.uniform(-max_shift, max_shift)), float(rng.uniform(-max_shift, max_shift)),
                float(rng.uniform(-max_angle_deg, max_angle_deg)))


# ----------------------------------------------------------------------------------------------- canonical parts


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_xy: tuple[float, float]) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation (an anisotropic random texture)."""
    noise = rng.standard_normal(shape).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), sigmaX=sigma_xy[0], sigmaY=sigma_xy[1])
    return smooth / (smooth.std() + 1e-6)


def _carrier(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Dark plate with a fixed 7x7 grid of pins; returns the image and the pin centres."""
    plate = np.full((size, size, 3), (70, 74, 78), np.float32)
    plate += 4.0 * _smooth_noise(rng, (size, size), (6.0, 0.6))[..., None]  # brushed metal, varies per part
    centres = []
    n = 7
    pitch = (size - 2 * _MARGIN) / n
    for row in range(n):
        for col in range(n):
            cx = _MARGIN + (col + 0.5) * pitch + rng.normal(0, 0.3)
            cy = _MARGIN + (row + 0.5) * pitch + rng.normal(0, 0.3)
            centres.append((cx, cy))
    return plate, centres


def _draw_pin(img: np.ndarray, cx: float, cy: float, tip: tuple[float, float] | None = None,
              shade: float = 1.0) -> None:
    """A pin seen from above: dark drop shadow, bright metal head, specular highlight.

    A bent pin's head is drawn at ``tip`` and connected to its base by a shaft.
    """
    s = 4  # sub-pixel drawing via cv2's fixed-point shift
    f = 1 << s

    def p(x: float, y: float) -> tuple[int, int]:
        return int(round(x * f)), int(round(y * f))

    hx, hy = tip if tip is not None else (cx, cy)
    cv2.circle(img, p(hx + 2, hy + 2), 7 * f, (40, 42, 44), -1, cv2.LINE_AA, s)
    if tip is not None:
        cv2.line(img, p(cx, cy), p(hx, hy), (150 * shade, 160 * shade, 170 * shade), 6, cv2.LINE_AA, s)
    cv2.circle(img, p(hx, hy), 6 * f, (170 * shade, 182 * shade, 195 * shade), -1, cv2.LINE_AA, s)
    cv2.circle(img, p(hx - 2, hy - 2), 2 * f, (235, 240, 245), -1, cv2.LINE_AA, s)


def _render_carrier(rng: np.random.Generator, size: int, defect: str | None) -> tuple[np.ndarray, np.ndarray]:
    plate, centres = _carrier(rng, size)
    shades = rng.uniform(0.95, 1.05, len(centres))
    clean = plate.copy()
    for (cx, cy), sh in zip(centres, shades, strict=True):
        _draw_pin(clean, cx, cy, shade=float(sh))
    if defect is None:
        return clean, np.zeros((size, size), np.float32)
    bad = plate.copy()
    victim = int(rng.integers(len(centres)))
    for i, ((cx, cy), sh) in enumerate(zip(centres, shades, strict=True)):
        if i != victim:
            _draw_pin(bad, cx, cy, shade=float(sh))
        elif defect == "bent_pin":
            ang = rng.uniform(0, 2 * np.pi)
            length = rng.uniform(7, 11)
            _draw_pin(bad, cx, cy, tip=(cx + length * np.cos(ang), cy + length * np.sin(ang)), shade=float(sh))
        elif defect == "missing_pin":
            cv2.circle(bad, (int(round(cx)), int(round(cy))), 3, (25, 25, 25), -1, cv2.LINE_AA)  # empty hole
        else:
            _draw_pin(bad, cx, cy, shade=float(sh))
    if defect == "debris":
        _draw_blob(rng, bad, color=rng.uniform(100, 200, 3), radius=rng.uniform(6, 11))
    elif defect not in ("bent_pin", "missing_pin"):
        raise ValueError(f"unknown carrier defect {defect!r}")
    return bad, _difference_mask(clean, bad)


def _draw_blob(rng: np.random.Generator, img: np.ndarray, color: np.ndarray, radius: float) -> None:
    """An irregular filled polygon (a piece of debris) somewhere inside the inspected area."""
    size = img.shape[0]
    cx, cy = rng.uniform(_MARGIN + 20, size - _MARGIN - 20, 2)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
    radii = radius * rng.uniform(0.5, 1.3, 9)
    pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)
    cv2.fillPoly(img, [np.round(pts * 16).astype(np.int32)], tuple(float(c) for c in color), cv2.LINE_AA, 4)


def _render_surface(rng: np.random.Generator, size: int, defect: str | None) -> tuple[np.ndarray, np.ndarray]:
    tint = np.array([128, 138, 150], np.float32) + rng.normal(0, 2, 3).astype(np.float32)
    grain = 7.0 * _smooth_noise(rng, (size, size), (3.0, 3.0)) + 5.0 * _smooth_noise(rng, (size, size), (8.0, 1.0))
    clean = tint + grain[..., None]
    if defect is None:
        return clean, np.zeros((size, size), np.float32)
    bad = clean.copy()
    if defect == "scratch":
        _draw_scratch(rng, bad)
    elif defect == "crack":
        _draw_crack(rng, bad)
    elif defect == "stain":
        return _stain(rng, bad)
    else:
        raise ValueError(f"unknown surface defect {defect!r}")
    return bad, _difference_mask(clean, bad)


def _draw_scratch(rng: np.random.Generator, img: np.ndarray) -> None:
    """A thin, slightly curved bright or dark line 30-90 px long."""
    size = img.shape[0]
    x0, y0 = rng.uniform(_MARGIN + 30, size - _MARGIN - 30, 2)
    ang = rng.uniform(0, np.pi)
    length = rng.uniform(30, 90)
    bend = rng.uniform(-0.3, 0.3)
    t = np.linspace(-0.5, 0.5, 24)
    xs = x0 + length * t * np.cos(ang) - bend * length * (t**2) * np.sin(ang)
    ys = y0 + length * t * np.sin(ang) + bend * length * (t**2) * np.cos(ang)
    value = rng.choice([215.0, 55.0])
    pts = np.round(np.stack([xs, ys], 1) * 16).astype(np.int32)
    cv2.polylines(img, [pts], False, (value, value, value), int(rng.integers(1, 3)), cv2.LINE_AA, 4)


def _draw_crack(rng: np.random.Generator, img: np.ndarray) -> None:
    """A dark jagged random walk (a crack), 2 px wide."""
    size = img.shape[0]
    x, y = rng.uniform(_MARGIN + 40, size - _MARGIN - 40, 2)
    ang = rng.uniform(0, 2 * np.pi)
    pts = [(x, y)]
    for _ in range(int(rng.integers(8, 14))):
        ang += rng.normal(0, 0.6)
        step = rng.uniform(3, 7)
        x = float(np.clip(x + step * np.cos(ang), _MARGIN, size - _MARGIN))
        y = float(np.clip(y + step * np.sin(ang), _MARGIN, size - _MARGIN))
        pts.append((x, y))
    arr = np.round(np.array(pts) * 16).astype(np.int32)
    cv2.polylines(img, [arr], False, (35, 33, 30), 2, cv2.LINE_AA, 4)


def _stain(rng: np.random.Generator, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A soft-edged blotch that darkens and tints the surface; the mask is where its opacity exceeds 0.3."""
    size = img.shape[0]
    canvas = np.zeros((size, size), np.float32)
    cx, cy = rng.uniform(_MARGIN + 30, size - _MARGIN - 30, 2)
    radius = rng.uniform(8, 18)
    axes = (int(radius), int(radius * rng.uniform(0.5, 1.0)))
    cv2.ellipse(canvas, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    wobble = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), 4) * 3
    alpha = cv2.GaussianBlur(np.clip(canvas + wobble * canvas, 0, 1), (0, 0), 3.0) * rng.uniform(0.45, 0.7)
    colour = np.array(rng.choice([[40, 70, 110], [60, 60, 60], [90, 120, 60]]), np.float32)
    out = img * (1 - alpha[..., None]) + colour * alpha[..., None]
    return out, (alpha > 0.15).astype(np.float32)


_LABEL_LINES = ("LOT 4711-B", "EXP 2027-01", "QTY 24 PCS")


def _label_canvas(rng: np.random.Generator, size: int, lines: tuple[str, ...],
                  ink: float, offsets: list[tuple[int, int]]) -> np.ndarray:
    img = np.full((size, size, 3), (60, 66, 72), np.float32)
    cv2.rectangle(img, (_MARGIN + 6, _MARGIN + 6), (size - _MARGIN - 6, size - _MARGIN - 6), (232, 236, 238), -1)
    colour = (30 * ink, 30 * ink, 40 * ink)
    for i, (text, (ox, oy)) in enumerate(zip(lines, offsets, strict=True)):
        cv2.putText(img, text, (_MARGIN + 20 + ox, _MARGIN + 42 + 30 * i + oy), cv2.FONT_HERSHEY_SIMPLEX, 0.75,
                    colour, 2, cv2.LINE_AA)
    # barcode: a fixed stripe pattern (same on every label)
    bars = np.random.default_rng(7).integers(1, 4, 40)
    x = _MARGIN + 20
    top, bottom = size - _MARGIN - 70, size - _MARGIN - 22
    for i, w in enumerate(bars):
        if i % 2 == 0:
            cv2.rectangle(img, (x, top), (x + int(w) - 1, bottom), colour, -1)
        x += int(w) + 1
    cv2.circle(img, (size - _MARGIN - 48, size - _MARGIN - 46), 20, (40, 40, 190), 3, cv2.LINE_AA)
    cv2.circle(img, (size - _MARGIN - 48, size - _MARGIN - 46), 8, (40, 40, 190), -1, cv2.LINE_AA)
    return img


def _render_label(rng: np.random.Generator, size: int, defect: str | None) -> tuple[np.ndarray, np.ndarray]:
    ink = float(rng.uniform(0.9, 1.1))
    offsets = [(int(rng.integers(-1, 2)), int(rng.integers(-1, 2))) for _ in _LABEL_LINES]
    paper = 2.0 * _smooth_noise(rng, (size, size), (2.0, 2.0))[..., None]
    clean = _label_canvas(rng, size, _LABEL_LINES, ink, offsets) + paper
    if defect is None:
        return clean, np.zeros((size, size), np.float32)
    if defect == "misprint":
        lines = list(_LABEL_LINES)
        row = int(rng.integers(len(lines)))
        text = lines[row]
        kind = rng.integers(3)
        pos = int(rng.integers(len(text)))
        if kind == 0:  # wrong character
            wrong = "8" if text[pos] != "8" else "3"
            text = text[:pos] + wrong + text[pos + 1:]
        elif kind == 1:  # dropped character
            text = text[:pos] + " " + text[pos + 1:] if text[pos] != " " else text[:pos] + "X" + text[pos + 1:]
        else:  # line printed shifted
            offsets = list(offsets)
            offsets[row] = (offsets[row][0] + int(rng.choice([-6, 6])), offsets[row][1] + int(rng.choice([-4, 4])))
        lines[row] = text
        bad = _label_canvas(rng, size, tuple(lines), ink, offsets) + paper
        return bad, _difference_mask(clean, bad)
    bad = clean.copy()
    if defect == "scratch":
        _draw_scratch(rng, bad)
        return bad, _difference_mask(clean, bad)
    if defect == "stain":
        return _stain(rng, bad)
    raise ValueError(f"unknown label defect {defect!r}")


def _difference_mask(clean: np.ndarray, bad: np.ndarray, threshold: float = 18.0) -> np.ndarray:
    """Ground truth for drawn defects: where the defective render differs visibly from the clean one."""
    diff = np.abs(bad - clean).max(axis=2)
    mask = (diff > threshold).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    return mask.astype(np.float32)


_RENDERERS = {"carrier": _render_carrier, "surface": _render_surface, "label": _render_label}


# ------------------------------------------------------------------------------------------------- imaging


def render_part(part: str, rng: np.random.Generator, defect: str | None = None, size: int = 256,
                pose: Pose | None = None, lighting: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Render one part as a fixed camera sees it.

    Returns ``(image, mask)``: BGR uint8 ``size x size x 3`` and uint8 ``size x size`` with 255 on defect pixels.
    ``pose=None`` draws a random small pose; pass ``Pose(0, 0, 0)`` for the nominal one.
    """
    if part not in _RENDERERS:
        raise ValueError(f"unknown part {part!r}, expected one of {', '.join(PARTS)}")
    if defect is not None and defect not in DEFECTS[part]:
        raise ValueError(f"unknown defect {defect!r} for {part}, expected one of {', '.join(DEFECTS[part])}")
    canvas = size + 2 * _MARGIN
    image, mask = _RENDERERS[part](rng, canvas, defect)
    pose = pose if pose is not None else random_pose(rng)
    centre = (canvas / 2.0, canvas / 2.0)
    warp = cv2.getRotationMatrix2D(centre, pose.angle_deg, 1.0)
    warp[:, 2] += (pose.dx - _MARGIN, pose.dy - _MARGIN)  # shift, then crop the centre `size` window
    image = cv2.warpAffine(image, warp, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask = cv2.warpAffine(mask, warp, (size, size), flags=cv2.INTER_LINEAR) > 0.5
    if lighting:
        gain = rng.uniform(0.88, 1.12)
        offset = rng.uniform(-8, 8)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
        gx, gy = rng.uniform(-0.08, 0.08, 2)
        image = image * (gain * (1 + gx * xx + gy * yy))[..., None] + offset
        image = image + rng.normal(0, 2.5, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), mask.astype(np.uint8) * 255


def write_dataset(out: Path, parts: tuple[str, ...] = PARTS, n_train: int = 50, n_test_normal: int = 20,
                  n_test_abnormal: int = 30, size: int = 256, seed: int = 0) -> dict[str, dict[str, int]]:
    """Write the folder layout described in the module docstring; returns image counts per part and split.

    Abnormal test images cycle through the part's defect types. Each image gets its own generator derived
    from ``(seed, part, split, index)``, so changing one count does not change the other images.
    """
    counts: dict[str, dict[str, int]] = {}
    for part_index, part in enumerate(parts):
        if part not in _RENDERERS:
            raise ValueError(f"unknown part {part!r}, expected one of {', '.join(PARTS)}")
        root = out / part
        dirs = {k: root / k for k in ("train/normal", "test/normal", "test/abnormal", "test/mask")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        for split_index, (split, n) in enumerate((("train/normal", n_train), ("test/normal", n_test_normal))):
            for i in range(n):
                rng = np.random.default_rng([seed, part_index, split_index, i])
                image, _ = render_part(part, rng, None, size)
                _write_png(dirs[split] / f"{i:03d}.png", image)
        for i in range(n_test_abnormal):
            defect = DEFECTS[part][i % len(DEFECTS[part])]
            rng = np.random.default_rng([seed, part_index, 2, i])
            image, mask = render_part(part, rng, defect, size)
            name = f"{i:03d}_{defect}.png"
            _write_png(dirs["test/abnormal"] / name, image)
            _write_png(dirs["test/mask"] / name, mask)
        counts[part] = {"train_normal": n_train, "test_normal": n_test_normal, "test_abnormal": n_test_abnormal}
    return counts


def _write_png(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise OSError(f"{path}: could not write image")

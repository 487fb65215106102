"""Reading anomaly datasets from folders, with one clear error line for every kind of bad input.

Two layouts are accepted, so data prepared for the common anomaly-detection libraries works as is:

* "folder" layout (what `edge-app sim anomalies` writes)::

      <root>/train/normal/*.png   <root>/test/normal/*.png   <root>/test/abnormal/*.png
      <root>/test/mask/<same file name as the abnormal image>

* MVTec-AD-like layout::

      <root>/train/good/*.png     <root>/test/good/*.png     <root>/test/<defect>/*.png
      <root>/ground_truth/<defect>/<stem>_mask.png

``--normal`` may point at the image folder itself or at ``<root>``; ``--data`` at ``<root>`` or ``<root>/test``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_app.errors import EdgeAppError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
NORMAL_NAMES = ("normal", "good")
MASK_DIR_NAMES = ("mask", "masks", "ground_truth")
MIN_NORMAL_IMAGES = 20

Roi = tuple[int, int, int, int]


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def parse_roi(text: str | None) -> Roi | None:
    """``"x,y,w,h"`` in pixels -> tuple, or None."""
    if text is None or text == "":
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise EdgeAppError(f"--roi: expected x,y,w,h as four integers, got {text!r}") from None
    if x < 0 or y < 0 or w < 8 or h < 8:
        raise EdgeAppError(f"--roi: expected x,y >= 0 and w,h >= 8, got {text!r}")
    return (x, y, w, h)


def read_image(path: Path) -> np.ndarray:
    """BGR uint8 (grey images are expanded to three channels); EdgeAppError if unreadable."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise EdgeAppError(f"{path}: not a readable image")
    return image


def crop_and_resize(image: np.ndarray, roi: Roi | None, size: int, source: str = "image") -> np.ndarray:
    """Cut the ROI out of ``image`` and resize it to ``size x size`` (area interpolation when shrinking)."""
    if roi is not None:
        x, y, w, h = roi
        if x + w > image.shape[1] or y + h > image.shape[0]:
            raise EdgeAppError(f"{source}: roi {x},{y},{w},{h} does not fit in a {image.shape[1]}x{image.shape[0]} "
                               "image")
        image = image[y:y + h, x:x + w]
    if image.shape[:2] == (size, size):
        return np.ascontiguousarray(image)
    shrink = image.shape[0] > size or image.shape[1] > size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


@dataclass
class ImageSet:
    """Images of one folder after ROI cropping and resizing, with their paths and original size (w, h)."""

    paths: list[Path]
    images: list[np.ndarray]
    original_size: tuple[int, int]


def load_images(paths: list[Path], roi: Roi | None, size: int, expected_size: tuple[int, int] | None = None,
                ) -> ImageSet:
    """Read, check that all share one size (a fixed camera), crop the ROI and resize."""
    images = []
    first: tuple[Path, tuple[int, int]] | None = None
    for path in paths:
        image = read_image(path)
        wh = (image.shape[1], image.shape[0])
        if expected_size is not None and wh != expected_size:
            raise EdgeAppError(f"{path}: image is {wh[0]}x{wh[1]}, expected {expected_size[0]}x{expected_size[1]} "
                               "like the training images")
        if first is None:
            first = (path, wh)
        elif wh != first[1]:
            raise EdgeAppError(f"{path}: image is {wh[0]}x{wh[1]} but {first[0].name} is {first[1][0]}x{first[1][1]}; "
                               "all images must have the same size (crop with --roi after fixing the camera)")
        images.append(crop_and_resize(image, roi, size, str(path)))
    if first is None:
        raise EdgeAppError("no images to load")
    return ImageSet(list(paths), images, first[1])


def resolve_normal_dir(folder: Path) -> Path:
    """The folder holding normal training images: ``folder`` itself or ``folder/train/{normal,good}`` etc."""
    if not folder.is_dir():
        raise EdgeAppError(f"{folder}: not a folder")
    if list_images(folder):
        return folder
    for sub in ("train/normal", "train/good", "normal", "good"):
        if (folder / sub).is_dir() and list_images(folder / sub):
            return folder / sub
    raise EdgeAppError(f"{folder}: no images found (expected {', '.join(IMAGE_SUFFIXES)} files here or in "
                       "train/normal/ or train/good/)")


def normal_training_paths(folder: Path) -> list[Path]:
    paths = list_images(resolve_normal_dir(folder))
    if len(paths) < MIN_NORMAL_IMAGES:
        raise EdgeAppError(f"{folder}: found {len(paths)} normal images, need at least {MIN_NORMAL_IMAGES}")
    return paths


def anomalous_paths(folder: Path) -> list[Path]:
    """Images in ``folder`` or in its defect-type subfolders (mask folders are skipped)."""
    if not folder.is_dir():
        raise EdgeAppError(f"{folder}: not a folder")
    paths = list_images(folder)
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if sub.name not in MASK_DIR_NAMES and sub.name not in NORMAL_NAMES:
            paths += list_images(sub)
    if not paths:
        raise EdgeAppError(f"{folder}: no anomalous images found")
    return paths


@dataclass
class EvalItem:
    path: Path
    label: int
    """0 normal, 1 anomalous."""
    mask_path: Path | None
    defect: str


def eval_items(data: Path) -> list[EvalItem]:
    """Normal and anomalous test images with their ground-truth masks where they exist (see module docstring)."""
    if not data.is_dir():
        raise EdgeAppError(f"{data}: not a folder")
    test_root = data / "test" if (data / "test").is_dir() else data
    root = test_root.parent if test_root.name == "test" else test_root
    items: list[EvalItem] = []
    for sub in sorted(p for p in test_root.iterdir() if p.is_dir()):
        if sub.name in MASK_DIR_NAMES:
            continue
        normal = sub.name in NORMAL_NAMES
        for path in list_images(sub):
            mask = None if normal else _find_mask(path, sub.name, test_root, root)
            items.append(EvalItem(path, 0 if normal else 1, mask, "good" if normal else sub.name))
    if not any(i.label == 0 for i in items) or not any(i.label == 1 for i in items):
        raise EdgeAppError(f"{test_root}: expected normal/ (or good/) and abnormal/ (or <defect>/) image folders "
                           "with at least one image each")
    return items


def _find_mask(path: Path, defect: str, test_root: Path, root: Path) -> Path | None:
    candidates = []
    for mask_dir in (test_root / "mask", test_root / "masks", root / "mask", root / "masks"):
        candidates += [mask_dir / path.name, mask_dir / defect / path.name, mask_dir / f"{path.stem}.png",
                       mask_dir / defect / f"{path.stem}_mask.png"]
    candidates += [root / "ground_truth" / defect / f"{path.stem}_mask.png",
                   root / "ground_truth" / defect / f"{path.stem}.png"]
    return next((c for c in candidates if c.is_file()), None)


def read_mask(path: Path | None, original_size: tuple[int, int], roi: Roi | None, size: int) -> np.ndarray:
    """Ground-truth mask as bool ``size x size`` in ROI coordinates (all False when there is none)."""
    if path is None:
        return np.zeros((size, size), bool)
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise EdgeAppError(f"{path}: not a readable mask image")
    if (mask.shape[1], mask.shape[0]) != original_size:
        mask = cv2.resize(mask, original_size, interpolation=cv2.INTER_NEAREST)
    if roi is not None:
        x, y, w, h = roi
        mask = mask[y:y + h, x:x + w]
    return cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST) > 127

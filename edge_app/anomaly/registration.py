"""Align each ROI to a golden reference with OpenCV's ECC, coarse to fine; fall back to identity when it fails.

ECC (Evangelidis & Psarakis, 2008) finds the warp ``W`` maximizing the *enhanced correlation coefficient*
between the zero-mean, unit-norm template ``T(x)`` and warped input ``I(W(x))``. Being a normalized
correlation, it ignores brightness gain and offset, which is what a fixed camera with drifting light needs.

* Euclidean (shift + rotation) or affine motion, estimated on a downscaled pyramid (coarse level first, the
  result seeds the next finer level with its translation doubled), on the grey ROI.
* ECC raises when it does not converge; a result that moves more than ``max_shift`` (fraction of the ROI),
  rotates more than ``max_rotation_deg`` or ends with a correlation below ``min_correlation`` (the image does not
  look like the reference: random textures, a different part) is implausible for a fixed camera. Both fall
  back to the identity warp and are *counted*, so the model card and benchmark can say how often it happened.

Warp convention (OpenCV's): ``aligned(x) = image(W x)``, i.e. ``cv2.warpAffine(image, W, ..., WARP_INVERSE_MAP)``;
an anomaly map in reference coordinates goes back to the image with the forward warp.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

Motion = Literal["euclidean", "affine", "none"]
_MOTION = {"euclidean": cv2.MOTION_EUCLIDEAN, "affine": cv2.MOTION_AFFINE}


@dataclass
class RegistrationStats:
    """How registrations went: attempts, ECC failures and implausible results (both fell back to identity)."""

    attempts: int = 0
    not_converged: int = 0
    implausible: int = 0

    @property
    def fallbacks(self) -> int:
        return self.not_converged + self.implausible


@dataclass(frozen=True, slots=True)
class Alignment:
    warp: np.ndarray
    """2x3 float32, reference coords -> image coords."""
    ok: bool
    """False when registration fell back to the identity."""


def identity_warp() -> np.ndarray:
    return np.eye(2, 3, dtype=np.float32)


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image


@dataclass
class Registrar:
    """Aligns images to a fixed golden reference (BGR uint8, square, the model's ROI size)."""

    reference: np.ndarray
    motion: Motion = "euclidean"
    levels: tuple[int, ...] = (4, 2)
    """Downscale factors, coarse to fine; the last one sets the accuracy (2 = half resolution)."""
    iterations: int = 60
    epsilon: float = 1e-4
    max_shift: float = 0.1
    max_rotation_deg: float = 10.0
    min_correlation: float = 0.5
    """ECC's final correlation coefficient below this means the image does not look like the reference."""
    stats: RegistrationStats = field(default_factory=RegistrationStats)
    _templates: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        ref = grey(self.reference).astype(np.float32)
        self._templates = {f: _downscale(ref, f) for f in self.levels}

    def align(self, image: np.ndarray) -> Alignment:
        """Warp from reference to ``image`` coordinates (identity and ``ok=False`` on fallback)."""
        if self.motion == "none":
            return Alignment(identity_warp(), True)
        self.stats.attempts += 1
        img = grey(image).astype(np.float32)
        warp = identity_warp()
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, self.iterations, self.epsilon)
        prev = None
        correlation = 0.0
        try:
            for factor in self.levels:
                if prev is not None:
                    warp[:, 2] *= prev / factor
                correlation, warp = cv2.findTransformECC(self._templates[factor], _downscale(img, factor), warp,
                                               _MOTION[self.motion], criteria, None, 3)
                prev = factor
        except cv2.error:
            self.stats.not_converged += 1
            return Alignment(identity_warp(), False)
        warp = warp.astype(np.float32)
        warp[:, 2] *= prev or 1
        if correlation < self.min_correlation or not self._plausible(warp, image.shape[1]):
            self.stats.implausible += 1
            return Alignment(identity_warp(), False)
        return Alignment(warp, True)

    def _plausible(self, warp: np.ndarray, size: int) -> bool:
        shift = float(np.hypot(*warp[:, 2]))
        rotation = abs(float(np.degrees(np.arctan2(warp[1, 0], warp[0, 0]))))
        scale = np.linalg.svd(warp[:, :2], compute_uv=False)
        return bool(shift <= self.max_shift * size and rotation <= self.max_rotation_deg
                    and scale.max() < 1.2 and scale.min() > 0.8)


def apply_warp(image: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """Resample ``image`` into reference coordinates: ``aligned(x) = image(W x)`` (edges replicated)."""
    h, w = image.shape[:2]
    return cv2.warpAffine(image, warp, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def valid_mask(size: int, warp: np.ndarray, margin: int) -> np.ndarray:
    """float32 ``size x size``: 1 where ``apply_warp`` sampled inside the image, shrunk by ``margin`` pixels
    (features near the edge of the valid area still see replicated border pixels)."""
    inside = cv2.warpAffine(np.ones((size, size), np.uint8), warp, (size, size),
                            flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
    if margin > 0:
        inside = cv2.erode(inside, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8),
                           borderType=cv2.BORDER_REPLICATE)
    return inside.astype(np.float32)


def unwarp(map_ref: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """Map from reference coordinates back to image coordinates (the inverse of `apply_warp`)."""
    h, w = map_ref.shape[:2]
    return cv2.warpAffine(map_ref, warp, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _downscale(img: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return img
    h, w = img.shape[:2]
    return cv2.resize(img, (w // factor, h // factor), interpolation=cv2.INTER_AREA)


def build_reference(images: list[np.ndarray], motion: Motion = "euclidean",
                    rounds: int = 2) -> tuple[np.ndarray, list[Alignment], RegistrationStats]:
    """Golden reference from normal images: start from their pixel-wise median, then ``rounds`` times align
    every image to the current reference and replace it by the mean of the aligned images (a sharper,
    noise-averaged template). Returns the reference, each image's final alignment and the last round's stats.
    """
    stack = np.stack(images)
    reference = np.median(stack, axis=0).astype(np.uint8)
    alignments = [Alignment(identity_warp(), True) for _ in images]
    stats = RegistrationStats()
    if motion == "none":
        return reference, alignments, stats
    for _ in range(rounds):
        registrar = Registrar(reference, motion)
        alignments = [registrar.align(img) for img in images]
        aligned = [apply_warp(img, a.warp) for img, a in zip(images, alignments, strict=True)]
        reference = np.clip(np.mean(aligned, axis=0) + 0.5, 0, 255).astype(np.uint8)
        stats = registrar.stats
    return reference, alignments, stats

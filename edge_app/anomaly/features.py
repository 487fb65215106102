"""A fixed filter bank that turns an aligned ROI into a grid of patch feature vectors (numpy reference).

No pretrained backbone can be downloaded here, so the "backbone" is a hand-made, CNN-shaped filter bank that
ONNX can express with Conv / AveragePool / Abs (see `onnx_export`), evaluated identically in numpy here:

1. **Photometric normalization**: ``x <- (x - mean(x)) / std(x)`` over the whole ROI, so a global brightness /
   contrast drift of the lighting does not look like an anomaly.
2. **Colour**: the normalized B, G, R channels averaged over each ``patch x patch`` cell.
3. **Structure** on a 3-level pyramid of the grey image (each level a 2x2 average of the previous, so the same
   sigma=1 kernels see scales 1, 2 and 4): Gaussian derivatives ``Gx, Gy, Gxx, Gyy, Gxy`` with

       G(x, y) = exp(-(x^2 + y^2) / 2 sigma^2) / (2 pi sigma^2)
       Gx = -x / sigma^2 G,   Gxx = (x^2 / sigma^4 - 1 / sigma^2) G,   Gxy = x y / sigma^4 G

   Each response is pooled to the patch grid twice: as is (signed: where edges and blobs are, which matters for
   aligned parts) and as its absolute value (local energy, which matters for textures whose phase is random).

That gives ``3 + 3 levels * 5 filters * 2 = 33`` features per patch cell. Convolutions use zero padding (the
same as ONNX Conv with symmetric pads) so the numpy and ONNX graphs agree to float rounding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

GREY_WEIGHTS_BGR = np.array([0.114, 0.587, 0.299], np.float32)
PHOTOMETRIC_EPS = 1e-3


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """Geometry of the filter bank; stored in the model so export and scoring agree."""

    size: int = 256
    """ROI side in pixels after resizing (square)."""
    patch: int = 4
    """Side of one patch cell in ROI pixels; the anomaly grid is ``size / patch`` square."""
    levels: int = 3
    sigma: float = 1.0
    radius: int = 3
    """Kernel radius (the kernels are ``2 radius + 1`` square)."""

    def __post_init__(self) -> None:
        if self.patch % (1 << (self.levels - 1)):
            raise ValueError(f"patch ({self.patch}) must be divisible by 2^(levels-1) = {1 << (self.levels - 1)}")
        if self.size % self.patch:
            raise ValueError(f"size ({self.size}) must be a multiple of patch ({self.patch})")

    @property
    def grid(self) -> int:
        return self.size // self.patch

    @property
    def n_filters(self) -> int:
        return 5

    @property
    def dim(self) -> int:
        return 3 + self.levels * self.n_filters * 2

    def to_dict(self) -> dict:
        return asdict(self)


def derivative_kernels(sigma: float, radius: int) -> np.ndarray:
    """``(5, k, k)`` float32 kernels Gx, Gy, Gxx, Gyy, Gxy (as correlation kernels, rows = y)."""
    ax = np.arange(-radius, radius + 1, dtype=np.float64)
    y, x = np.meshgrid(ax, ax, indexing="ij")
    g = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    g /= g.sum()
    s2, s4 = sigma**2, sigma**4
    kernels = [-x / s2 * g, -y / s2 * g, (x**2 / s4 - 1 / s2) * g, (y**2 / s4 - 1 / s2) * g, x * y / s4 * g]
    out = np.stack([k - k.mean() for k in kernels])  # exact zero DC despite truncation
    return out.astype(np.float32)


def avg_pool(x: np.ndarray, k: int) -> np.ndarray:
    """Non-overlapping ``k x k`` mean over the last two axes (ONNX AveragePool with kernel = stride = k)."""
    if k == 1:
        return x
    *lead, h, w = x.shape
    return x.reshape(*lead, h // k, k, w // k, k).mean(axis=(-3, -1), dtype=np.float32)


def photometric_normalize(batch: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation per image over all channels and pixels."""
    mean = batch.mean(axis=(1, 2, 3), keepdims=True, dtype=np.float32)
    centred = batch - mean
    std = np.sqrt((centred * centred).mean(axis=(1, 2, 3), keepdims=True, dtype=np.float32))
    return centred / (std + np.float32(PHOTOMETRIC_EPS))


def to_batch(images: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """BGR uint8 HxWx3 images -> float32 ``(N, 3, H, W)`` in 0..255, the ONNX graph's input."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    return np.ascontiguousarray(arr.transpose(0, 3, 1, 2), dtype=np.float32)


def extract_features(batch: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """``(N, 3, S, S)`` float32 -> ``(N, D, G, G)`` float32 patch features (see module docstring)."""
    n, c, h, w = batch.shape
    if c != 3 or h != spec.size or w != spec.size:
        raise ValueError(f"expected (N, 3, {spec.size}, {spec.size}), got {batch.shape}")
    x = photometric_normalize(batch.astype(np.float32, copy=False))
    grey = np.tensordot(GREY_WEIGHTS_BGR, x, axes=([0], [1])).astype(np.float32)  # (N, S, S)
    kernels = derivative_kernels(spec.sigma, spec.radius)
    parts = [avg_pool(x, spec.patch)]
    level = grey
    for lvl in range(spec.levels):
        if lvl:
            level = avg_pool(level, 2)
        responses = np.stack([
            np.stack([cv2.filter2D(img, cv2.CV_32F, k, borderType=cv2.BORDER_CONSTANT) for k in kernels])
            for img in level
        ])  # (N, 5, s, s)
        pool = spec.patch >> lvl
        parts.append(avg_pool(responses, pool))
        parts.append(avg_pool(np.abs(responses), pool))
    return np.concatenate(parts, axis=1)

"""Per-location Gaussians over patch features (PaDiM-style) and the Mahalanobis anomaly map (numpy reference).

For every patch cell ``l`` of the grid the normal appearance is modelled as a Gaussian ``N(mu_l, Sigma_l)``
over the D-dimensional features of `features`. A test patch ``f`` scores its Mahalanobis distance::

    m_l(f) = sqrt((f - mu_l)^T Sigma_l^-1 (f - mu_l))

**Few samples.** With 20 images and D = 33 the sample covariance is singular, so three things help:

* *jitter augmentation* (done by the caller, see `train`): every aligned training image also enters shifted by
  one pixel in the 8 directions, which teaches the model the registration residue it will see;
* *weighted neighbourhood pooling*: cell ``l`` also takes the samples of its 8 neighbouring cells with a small
  weight ``w`` (0.2), which helps on textures without blurring sharp, aligned structure much;
* *Ledoit-Wolf shrinkage* towards a scaled identity, with the optimal intensity estimated from the data::

      S = sample covariance,  nu = tr(S) / D,  d^2 = ||S - nu I||_F^2
      b^2 = min(d^2, (1/n^2) sum_k ||x_k x_k^T - S||_F^2) = min(d^2, (1/n^2) sum_k ||x_k - mu||^4 - ||S||_F^2 / n)
      Sigma = (b^2 / d^2) nu I + (1 - b^2 / d^2) S

  (with weights, n is the weight total and the squared-weight total where the formula counts samples twice).

Features are first divided by their global standard deviation so the identity target treats them alike.

The fit only needs weighted moment sums (``sum w``, ``sum w x``, ``sum w x x^T``, ``sum w |x|^2``,
``sum w |x|^4``, ``sum w |x|^2 x``), so `MomentAccumulator` streams images through once and keeps sums per
fold: a k-fold held-out fit is "total minus one fold", not a refit.

**Inference as matmuls.** With the Cholesky factor ``Sigma^-1 = C C^T`` the distance is ``||(f - mu)^T C||``;
``W = diag(1 / scale) C`` folds the feature scaling in, so ONNX only needs Sub, MatMul, Mul, ReduceSum, Sqrt.

The map is then smoothed (normalized Gaussian convolution on the grid, sigma in cells) and upsampled
bilinearly to the ROI size; the image score is the maximum of the map.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True, slots=True)
class GaussianField:
    """``mean`` (L, D) and ``whitener`` W (L, D, D) with ``m^2 = ||(f - mean) W||^2``; L = grid * grid."""

    mean: np.ndarray
    whitener: np.ndarray
    grid: int
    shrinkage: np.ndarray
    """Ledoit-Wolf intensity per location (diagnostic, 0 = sample covariance, 1 = scaled identity)."""


def _neighbour_shifts(radius: int) -> list[tuple[int, int]]:
    return [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]


@dataclass
class _Moments:
    weight: float
    weight_sq: float
    s1: np.ndarray  # (L, D)   sum w x
    s2: np.ndarray  # (L, D, D) sum w x x^T
    a1: np.ndarray  # (L,)     sum w |x|^2
    a2: np.ndarray  # (L,)     sum w |x|^4
    t3: np.ndarray  # (L, D)   sum w |x|^2 x

    @classmethod
    def zeros(cls, locations: int, dim: int) -> _Moments:
        return cls(0.0, 0.0, np.zeros((locations, dim)), np.zeros((locations, dim, dim)), np.zeros(locations),
                   np.zeros(locations), np.zeros((locations, dim)))

    def minus(self, other: _Moments) -> _Moments:
        return _Moments(self.weight - other.weight, self.weight_sq - other.weight_sq, self.s1 - other.s1,
                        self.s2 - other.s2, self.a1 - other.a1, self.a2 - other.a2, self.t3 - other.t3)

    def plus(self, other: _Moments) -> _Moments:
        return _Moments(self.weight + other.weight, self.weight_sq + other.weight_sq, self.s1 + other.s1,
                        self.s2 + other.s2, self.a1 + other.a1, self.a2 + other.a2, self.t3 + other.t3)


class MomentAccumulator:
    """Streams ``(n, D, G, G)`` feature batches into per-group weighted moment sums; fits Gaussians from them."""

    def __init__(self, scale: np.ndarray, grid: int, groups: int = 1, neighbourhood: int = 1,
                 neighbour_weight: float = 0.2) -> None:
        self.scale = np.asarray(scale, np.float64)
        self.dim = self.scale.size
        self.grid = grid
        self.radius = neighbourhood
        self.shifts = _neighbour_shifts(neighbourhood)
        self.weights = [1.0 if s == (0, 0) else neighbour_weight for s in self.shifts]
        self.groups = [_Moments.zeros(grid * grid, self.dim) for _ in range(groups)]

    def add(self, features: np.ndarray, group: int = 0) -> None:
        n_img, dim, grid, _ = features.shape
        r = self.radius
        ggnd = (features.transpose(2, 3, 0, 1) / self.scale.astype(np.float32)).astype(np.float32)
        padded = np.pad(ggnd, ((r, r), (r, r), (0, 0), (0, 0)), mode="edge")
        m = self.groups[group]
        for (dy, dx), w in zip(self.shifts, self.weights, strict=True):
            x = np.ascontiguousarray(padded[r + dy:r + dy + grid, r + dx:r + dx + grid]).reshape(grid * grid, n_img,
                                                                                                  dim)
            sq = (x * x).sum(axis=2, dtype=np.float64)  # (L, n)
            m.weight += w * n_img
            m.weight_sq += w * w * n_img
            m.s1 += w * x.sum(axis=1, dtype=np.float64)
            m.s2 += w * np.matmul(x.transpose(0, 2, 1), x).astype(np.float64)
            m.a1 += w * sq.sum(axis=1)
            m.a2 += w * (sq * sq).sum(axis=1)
            m.t3 += w * np.einsum("ln,lnd->ld", sq, x.astype(np.float64))

    def fit(self, exclude_group: int | None = None) -> GaussianField:
        """Gaussians from all groups, or from all but ``exclude_group`` (a held-out fold)."""
        total = self.groups[0]
        for g in self.groups[1:]:
            total = total.plus(g)
        if exclude_group is not None:
            total = total.minus(self.groups[exclude_group])
        return _gaussians_from_moments(total, self.scale, self.grid)


def _gaussians_from_moments(m: _Moments, scale: np.ndarray, grid: int) -> GaussianField:
    n, dim = m.weight, scale.size
    mean = m.s1 / n
    cov = m.s2 / n - mean[:, :, None] * mean[:, None, :]
    cov = (cov + cov.transpose(0, 2, 1)) / 2
    # sum_k w_k |x_k - mu|^4 expanded in the stored sums: a = |x|^2, b = x.mu, c = |mu|^2
    c = (mean * mean).sum(axis=1)
    fourth = (m.a2 - 4 * (mean * m.t3).sum(axis=1) + 2 * c * m.a1
              + 4 * np.einsum("ld,lde,le->l", mean, m.s2, mean) - 4 * c * (mean * m.s1).sum(axis=1) + c * c * n)
    fourth *= m.weight_sq / n  # approximates sum_k w_k^2 |x_k - mu|^4 (see module docstring)
    nu = np.trace(cov, axis1=1, axis2=2) / dim
    eye = np.eye(dim)
    d2 = ((cov - nu[:, None, None] * eye) ** 2).sum(axis=(1, 2))
    b2 = np.minimum(d2, np.maximum(fourth - m.weight_sq * (cov**2).sum(axis=(1, 2)), 0) / n**2)
    shrink = np.where(d2 > 0, np.clip(b2 / np.maximum(d2, 1e-300), 0, 1), 1.0)
    sigma = shrink[:, None, None] * nu[:, None, None] * eye + (1 - shrink[:, None, None]) * cov
    sigma += 1e-6 * np.maximum(nu, 1e-12)[:, None, None] * eye  # numerical floor
    # Sigma = L L^T  =>  Sigma^-1 = L^-T L^-1, so C = L^-T. (Batched LAPACK inverses of 4096 small matrices are
    # slow under OpenBLAS threading; Cholesky plus a vectorized triangular inverse is fast and stable.)
    lower_inv = _lower_triangular_inverse(np.linalg.cholesky(sigma))
    whitener = lower_inv.transpose(0, 2, 1) / scale[None, :, None]
    return GaussianField(mean=(mean * scale).astype(np.float32), whitener=whitener.astype(np.float32),
                         grid=grid, shrinkage=shrink.astype(np.float32))


def _lower_triangular_inverse(lower: np.ndarray) -> np.ndarray:
    """Batched inverse of lower-triangular ``(B, D, D)`` matrices by forward substitution, row by row."""
    dim = lower.shape[-1]
    inv = np.zeros_like(lower)
    eye = np.eye(dim)
    for i in range(dim):
        inv[:, i, :] = (eye[i] - np.einsum("bk,bkj->bj", lower[:, i, :i], inv[:, :i, :])) / lower[:, i, i:i + 1]
    return inv


def feature_scale(features: np.ndarray) -> np.ndarray:
    """Global per-feature standard deviation over images and cells (``(N, D, G, G)`` -> ``(D,)``)."""
    return features.astype(np.float64).std(axis=(0, 2, 3)) + 1e-6


def fit_gaussians(features: np.ndarray, neighbourhood: int = 1, neighbour_weight: float = 0.2) -> GaussianField:
    """Fit the per-location Gaussians to ``(N, D, G, G)`` features of normal images in one go."""
    acc = MomentAccumulator(feature_scale(features), features.shape[-1], 1, neighbourhood, neighbour_weight)
    for i in range(0, len(features), 16):
        acc.add(features[i:i + 16])
    return acc.fit()


def mahalanobis_grid(features: np.ndarray, field: GaussianField) -> np.ndarray:
    """``(N, D, G, G)`` -> ``(N, G, G)`` Mahalanobis distances, computed exactly as the ONNX graph does."""
    n, dim, grid, _ = features.shape
    f = features.reshape(n, dim, grid * grid).transpose(2, 0, 1).astype(np.float32)  # (L, N, D)
    y = np.matmul(f - field.mean[:, None, :], field.whitener)  # (L, N, D)
    dist = np.sqrt((y * y).sum(axis=2, dtype=np.float32))  # (L, N)
    return dist.T.reshape(n, grid, grid)


def smoothing_kernel(sigma_cells: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3 * sigma_cells)))
    ax = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-(ax**2) / (2 * sigma_cells**2))
    k2 = np.outer(g, g)
    return (k2 / k2.sum()).astype(np.float32)


def smoothing_normalizer(grid: int, kernel: np.ndarray) -> np.ndarray:
    """Zero-padded convolution of an all-ones grid: dividing by it makes border cells a proper weighted mean."""
    return cv2.filter2D(np.ones((grid, grid), np.float32), cv2.CV_32F, kernel, borderType=cv2.BORDER_CONSTANT)


def smooth_and_upsample(grid_maps: np.ndarray, sigma_cells: float, size: int) -> np.ndarray:
    """``(N, G, G)`` -> ``(N, size, size)``: normalized Gaussian smoothing, then bilinear (half-pixel) upsampling."""
    kernel = smoothing_kernel(sigma_cells)
    norm = smoothing_normalizer(grid_maps.shape[-1], kernel)
    out = []
    for m in grid_maps.astype(np.float32):
        smooth = cv2.filter2D(m, cv2.CV_32F, kernel, borderType=cv2.BORDER_CONSTANT) / norm
        out.append(cv2.resize(smooth, (size, size), interpolation=cv2.INTER_LINEAR))
    return np.stack(out)


def raw_maps(features: np.ndarray, field: GaussianField, sigma_cells: float, size: int,
             valid: np.ndarray | None = None) -> np.ndarray:
    """Numpy reference of the scoring graph from features to the raw map: ``(N, D, G, G)`` -> ``(N, S, S)``,
    zeroed where ``valid`` (``(N, S, S)``) is 0."""
    maps = smooth_and_upsample(mahalanobis_grid(features, field), sigma_cells, size)
    return maps if valid is None else maps * valid

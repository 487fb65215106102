"""Training: golden reference + registration, per-location Gaussians, held-out threshold, ONNX export.

1. Crop the ROI and resize every image to ``size x size``.
2. Build the golden reference and align every normal image to it (`registration.build_reference`). If more than
   half of the normal images cannot be registered (textures without structure, parts that really move), the
   model is trained without registration and the model card says so.
3. k-fold over the normal images: fit on k-1 folds, score the held-out fold. These *held-out* scores are what the
   threshold is set on (training scores are optimistically low).
4. Fit the final Gaussians on all normal images; calibrate (percentile + margin, or F1-optimal when anomalous
   images are given, scored by the final model).
5. Export the scoring graph to ONNX and check it against the numpy reference on two training images.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge_app.anomaly import data as datasets
from edge_app.anomaly.features import FeatureSpec, extract_features, to_batch
from edge_app.anomaly.model import GaussianField, MomentAccumulator, feature_scale, raw_maps
from edge_app.anomaly.registration import Motion, Registrar, apply_warp, build_reference, identity_warp, valid_mask
from edge_app.anomaly.runtime import (
    CARD_FILE,
    FORMAT_VERSION,
    META_FILE,
    MODEL_FILE,
    REFERENCE_FILE,
    write_atomic,
)
from edge_app.anomaly.threshold import Calibration, calibrate
from edge_app.errors import EdgeAppError

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class TrainOptions:
    size: int = 256
    patch: int = 4
    motion: Motion = "euclidean"
    neighbourhood: int = 1
    """Cells around each cell whose samples also feed its Gaussian (see model.py)..."""
    neighbour_weight: float = 0.2
    """... with this weight relative to the cell's own samples."""
    jitter_px: float = 1.0
    """Training images also enter shifted by this many pixels in 8 directions (0 = off)..."""
    jitter_below: int = 100
    """... when there are fewer normal images than this (with more, their own variation suffices)."""
    smoothing_cells: float = 1.0
    """Gaussian sigma of the map smoothing, in grid cells (1 cell = ``patch`` pixels)."""
    folds: int = 5
    percentile: float = 99.0
    margin: float = 0.25
    max_registration_failures: float = 0.5
    """Train without registration when more than this share of normal images cannot be registered."""


@dataclass
class TrainResult:
    model_dir: Path
    calibration: Calibration
    n_normal: int
    n_anomalous: int
    seconds: float
    motion: str
    registration_fallbacks: int
    heldout_normal_scores: list[float] = field(default_factory=list)
    anomalous_scores: list[float] = field(default_factory=list)


def _scores(images: list[np.ndarray], valid: np.ndarray, spec: FeatureSpec, gaussians: GaussianField,
            sigma: float) -> np.ndarray:
    """Raw image scores (max of the raw map), in chunks to bound memory."""
    out = []
    for i in range(0, len(images), 16):
        feats = extract_features(to_batch(images[i:i + 16]), spec)
        maps = raw_maps(feats, gaussians, sigma, spec.size, valid[i:i + 16])
        out.append(maps.reshape(len(maps), -1).max(axis=1))
    return np.concatenate(out) if out else np.zeros(0)


def jittered(image: np.ndarray, px: float) -> list[np.ndarray]:
    """The image shifted by ``px`` pixels in the 8 compass directions (edges replicated)."""
    h, w = image.shape[:2]
    out = []
    for dy in (-px, 0.0, px):
        for dx in (-px, 0.0, px):
            if dy or dx:
                shift = np.float32([[1, 0, dx], [0, 1, dy]])
                out.append(cv2.warpAffine(image, shift, (w, h), flags=cv2.INTER_LINEAR,
                                          borderMode=cv2.BORDER_REPLICATE))
    return out


def border_margin(spec: FeatureSpec) -> int:
    """Pixels next to warp-invalid areas that are not scored: two patch cells."""
    return 2 * spec.patch


def train_from_images(normal: list[np.ndarray], out: Path, *, anomalous: list[np.ndarray] | None = None,
                      roi: datasets.Roi | None = None, image_size: tuple[int, int] | None = None,
                      options: TrainOptions = TrainOptions(), source: str = "", log: Log = lambda _: None,
                      ) -> TrainResult:
    """Train from ROI images already cropped and resized to ``options.size`` (BGR uint8)."""
    started = time.perf_counter()
    if len(normal) < datasets.MIN_NORMAL_IMAGES:
        raise EdgeAppError(f"{source or 'normal images'}: found {len(normal)} normal images, need at least "
                           f"{datasets.MIN_NORMAL_IMAGES}")
    spec = FeatureSpec(size=options.size, patch=options.patch)
    motion: Motion = options.motion
    reference, alignments, stats = build_reference(normal, motion)
    fallbacks = sum(not a.ok for a in alignments)
    if motion != "none" and fallbacks > options.max_registration_failures * len(normal):
        log(f"registration failed for {fallbacks}/{len(normal)} normal images: training without registration")
        motion = "none"
        reference = np.clip(np.mean(normal, axis=0) + 0.5, 0, 255).astype(np.uint8)
        aligned = list(normal)
        warps = [identity_warp() for _ in normal]
    else:
        aligned = [apply_warp(img, a.warp) for img, a in zip(normal, alignments, strict=True)]
        warps = [a.warp for a in alignments]
    valid = np.stack([valid_mask(spec.size, w, border_margin(spec)) for w in warps])
    log(f"registered {len(normal)} normal images ({motion}, {fallbacks} fell back to identity)")

    feats = np.concatenate([extract_features(to_batch(aligned[i:i + 16]), spec) for i in range(0, len(aligned), 16)])
    folds = max(2, min(options.folds, len(normal)))
    fold_of = np.arange(len(normal)) % folds
    acc = MomentAccumulator(feature_scale(feats), spec.grid, folds, options.neighbourhood, options.neighbour_weight)
    for i, image in enumerate(aligned):
        acc.add(feats[i:i + 1], int(fold_of[i]))
        if options.jitter_px and len(normal) < options.jitter_below:
            acc.add(extract_features(to_batch(jittered(image, options.jitter_px)), spec), int(fold_of[i]))
    heldout = np.zeros(len(normal))
    for k in range(folds):
        test = fold_of == k
        maps = raw_maps(feats[test], acc.fit(exclude_group=k), options.smoothing_cells, spec.size, valid[test])
        heldout[test] = maps.reshape(len(maps), -1).max(axis=1)
    gaussians = acc.fit()
    log(f"fitted {spec.grid}x{spec.grid} Gaussians over {spec.dim} features ({folds}-fold held-out scores)")

    anomalous_scores = np.zeros(0)
    if anomalous:
        registrar = Registrar(reference, motion)
        anomalous_warps = [registrar.align(img).warp for img in anomalous]
        anomalous_aligned = [apply_warp(img, w) for img, w in zip(anomalous, anomalous_warps, strict=True)]
        anomalous_valid = np.stack([valid_mask(spec.size, w, border_margin(spec)) for w in anomalous_warps])
        anomalous_scores = _scores(anomalous_aligned, anomalous_valid, spec, gaussians, options.smoothing_cells)
    calibration = calibrate(heldout, anomalous_scores if anomalous else None, options.percentile, options.margin)
    log(f"threshold {calibration.threshold:.3f} ({calibration.method})")

    from edge_app.anomaly.onnx_export import build_graph, make_session, save_model

    graph = build_graph(spec, gaussians, options.smoothing_cells, calibration)
    out.mkdir(parents=True, exist_ok=True)
    save_model(graph, out / MODEL_FILE)
    check = to_batch(aligned[:2])
    onnx_raw = make_session(out / MODEL_FILE).run(["raw_map"], {"image": check, "valid": valid[:2, None]})[0][:, 0]
    ref_raw = raw_maps(feats[:2], gaussians, options.smoothing_cells, spec.size, valid[:2])
    if not np.allclose(onnx_raw, ref_raw, rtol=1e-3, atol=1e-3):
        raise RuntimeError(f"ONNX graph disagrees with the numpy reference (max diff "
                           f"{np.abs(onnx_raw - ref_raw).max():.3g})")
    ok, png = cv2.imencode(".png", reference)
    write_atomic(out / REFERENCE_FILE, png.tobytes())
    seconds = time.perf_counter() - started
    result = TrainResult(out, calibration, len(normal), len(anomalous or []), seconds, motion, fallbacks,
                         heldout.tolist(), anomalous_scores.tolist())
    meta = {
        "format_version": FORMAT_VERSION,
        "size": spec.size,
        "roi": list(roi) if roi else None,
        "image_size": list(image_size or (spec.size, spec.size)),
        "features": spec.to_dict(),
        "neighbourhood": options.neighbourhood,
        "smoothing_cells": options.smoothing_cells,
        "border_margin": border_margin(spec),
        "registration": {"motion": motion, "requested": options.motion, "fallbacks": fallbacks,
                         "ecc_not_converged": stats.not_converged, "implausible": stats.implausible},
        "calibration": calibration.to_dict(),
        "training": {"source": source, "n_normal": len(normal), "n_anomalous": len(anomalous or []),
                     "folds": folds, "seconds": round(seconds, 2), "options": asdict(options),
                     "heldout_normal_scores": [round(s, 4) for s in heldout.tolist()],
                     "anomalous_scores": [round(s, 4) for s in anomalous_scores.tolist()]},
    }
    write_atomic(out / META_FILE, json.dumps(meta, indent=2).encode())
    write_atomic(out / CARD_FILE, _model_card(result, meta).encode())
    log(f"wrote {out} in {seconds:.1f} s")
    return result


def train_model(normal_dir: Path, out: Path, anomalous_dir: Path | None = None, roi: datasets.Roi | None = None,
                options: TrainOptions = TrainOptions(), log: Log = lambda _: None) -> TrainResult:
    """Train from folders (see `data` for the accepted layouts)."""
    normal_paths = datasets.normal_training_paths(normal_dir)
    normal = datasets.load_images(normal_paths, roi, options.size)
    anomalous = None
    if anomalous_dir is not None:
        anomalous = datasets.load_images(datasets.anomalous_paths(anomalous_dir), roi, options.size,
                                         expected_size=normal.original_size).images
    return train_from_images(normal.images, out, anomalous=anomalous, roi=roi, image_size=normal.original_size,
                             options=options, source=str(normal_dir), log=log)


def _model_card(result: TrainResult, meta: dict) -> str:
    cal = result.calibration
    heldout = np.array(result.heldout_normal_scores)
    lines = [
        "# Anomaly model card",
        "",
        f"- Trained on: `{meta['training']['source']}` ({result.n_normal} normal, {result.n_anomalous} anomalous "
        f"images), ROI {meta['roi'] or 'whole image'} of {meta['image_size'][0]}x{meta['image_size'][1]} images, "
        f"resized to {meta['size']}x{meta['size']}.",
        f"- Registration: {result.motion} ECC to the golden reference `reference.png` "
        f"({result.registration_fallbacks} of {result.n_normal} normal images fell back to identity).",
        f"- Method: per-location Gaussians (Ledoit-Wolf shrinkage) over a {meta['features']['levels']}-level "
        f"Gaussian-derivative + colour filter bank on a {meta['size'] // meta['features']['patch']}-cell grid; "
        "Mahalanobis distance map, smoothed; image score = max of the map.",
        f"- Threshold: {cal.threshold:.4f} raw ({cal.method}); scores are normalized by a logistic curve with "
        f"scale {cal.scale:.4f} so the threshold is 0.5.",
        f"- Held-out normal raw scores: median {np.median(heldout):.3f}, max {heldout.max():.3f}.",
        f"- Training time: {result.seconds:.1f} s.",
        "",
        "Use: `edge-app anomaly predict <this dir> IMAGE...` or the `inspections:` section of the edge-app config.",
        "Limits: the part must appear at the same place (within ~10% of the ROI and ~10 degrees) and under "
        "similar lighting as in training; retrain after moving the camera.",
        "",
    ]
    return "\n".join(lines)

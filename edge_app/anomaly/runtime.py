"""A trained model directory at run time: crop ROI -> register to the golden reference -> ONNX scoring.

Model directory (written by `train`)::

    model.onnx       scoring graph (filter bank, Mahalanobis, smoothing, normalization; see onnx_export)
    reference.png    golden reference ROI (registration template)
    model.json       ROI, sizes, registration settings, calibration (threshold, normalization), training stats
    model_card.md    what it was trained on, how well it did, how to use it

Maps come back in the *ROI's* coordinates (the registration warp is undone), so masks line up with the image.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_app.anomaly.data import Roi, crop_and_resize
from edge_app.anomaly.features import to_batch
from edge_app.anomaly.registration import Registrar, apply_warp, unwarp, valid_mask
from edge_app.anomaly.threshold import Calibration
from edge_app.errors import EdgeAppError

MODEL_FILE = "model.onnx"
REFERENCE_FILE = "reference.png"
META_FILE = "model.json"
CARD_FILE = "model_card.md"
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Prediction:
    """One inspected ROI. ``anomaly_map`` is normalized (0.5 = threshold), ROI coordinates, ``size x size``."""

    score: float
    raw_score: float
    is_anomalous: bool
    confidence: float
    """``max(score, 1 - score)``: 0.5 on the decision boundary, near 1 far from it."""
    area_percent: float
    """Share of ROI pixels whose map value is above the threshold."""
    anomaly_map: np.ndarray
    raw_map: np.ndarray
    registered: bool
    """False when registration fell back to the identity warp."""

    @property
    def mask(self) -> np.ndarray:
        return self.anomaly_map >= 0.5

    def to_json(self) -> dict:
        return {"is_anomalous": self.is_anomalous, "score": round(self.score, 6),
                "confidence": round(self.confidence, 6), "area_percent": round(self.area_percent, 4),
                "raw_score": round(self.raw_score, 6), "registered": self.registered}


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class AnomalyModel:
    """Loads a model directory and scores images with ONNX Runtime (CPU)."""

    def __init__(self, model_dir: Path, threads: int = 0) -> None:
        from edge_app.anomaly.onnx_export import make_session

        model_dir = Path(model_dir)
        meta_path = model_dir / META_FILE
        if not meta_path.is_file() or not (model_dir / MODEL_FILE).is_file():
            raise EdgeAppError(f"{model_dir}: not an anomaly model directory (missing {META_FILE} or {MODEL_FILE})")
        try:
            self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise EdgeAppError(f"{meta_path}: not valid JSON ({exc.msg})") from None
        if self.meta.get("format_version") != FORMAT_VERSION:
            raise EdgeAppError(f"{meta_path}: format_version {self.meta.get('format_version')!r} is not supported")
        self.model_dir = model_dir
        self.size = int(self.meta["size"])
        self.roi: Roi | None = tuple(self.meta["roi"]) if self.meta.get("roi") else None  # type: ignore[assignment]
        self.image_size: tuple[int, int] = tuple(self.meta["image_size"])  # type: ignore[assignment]
        self.calibration = Calibration.from_dict(self.meta["calibration"])
        self.border_margin = int(self.meta["border_margin"])
        reference = cv2.imread(str(model_dir / REFERENCE_FILE), cv2.IMREAD_COLOR)
        if reference is None:
            raise EdgeAppError(f"{model_dir / REFERENCE_FILE}: missing or unreadable golden reference")
        self.reference = reference
        self.registrar = Registrar(reference, self.meta["registration"]["motion"])
        self.session = make_session(model_dir / MODEL_FILE, threads)

    def prepare(self, image: np.ndarray, source: str = "image", apply_roi: bool = True,
                ) -> tuple[np.ndarray, np.ndarray, bool]:
        """Image -> (aligned ROI, warp, registered?).

        With ``apply_roi`` the image must be a full camera image of the training size and the model's ROI is cut
        out of it; without, ``image`` already is the ROI (any size; it is resized), as the edge-app inspector
        passes it after cutting the ROI configured for the stream.
        """
        if image.ndim != 3 or image.shape[2] != 3:
            raise EdgeAppError(f"{source}: expected a BGR colour image, got shape {image.shape}")
        wh = (image.shape[1], image.shape[0])
        if apply_roi and wh != self.image_size:
            raise EdgeAppError(f"{source}: image is {wh[0]}x{wh[1]}, expected {self.image_size[0]}x"
                               f"{self.image_size[1]} like the training images")
        roi_image = crop_and_resize(image, self.roi if apply_roi else None, self.size, source)
        alignment = self.registrar.align(roi_image)
        return apply_warp(roi_image, alignment.warp), alignment.warp, alignment.ok

    def score_aligned(self, aligned: list[np.ndarray], warps: list[np.ndarray],
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Run the ONNX graph: (anomaly_map, score, raw_map, raw_score) for aligned ROIs."""
        valid = np.stack([valid_mask(self.size, w, self.border_margin) for w in warps])[:, None]
        maps, scores, raw_maps, raw_scores = self.session.run(None, {"image": to_batch(aligned), "valid": valid})
        return maps[:, 0], scores, raw_maps[:, 0], raw_scores

    def predict(self, image: np.ndarray, source: str = "image", apply_roi: bool = True) -> Prediction:
        """Score one image (see `prepare` for ``apply_roi``); maps are in ROI coordinates, ``size x size``."""
        aligned, warp, ok = self.prepare(image, source, apply_roi)
        maps, scores, raw_maps, raw_scores = self.score_aligned([aligned], [warp])
        anomaly_map = unwarp(maps[0], warp)
        raw_map = unwarp(raw_maps[0], warp)
        score = float(scores[0])
        return Prediction(score=score, raw_score=float(raw_scores[0]), is_anomalous=score >= 0.5,
                          confidence=max(score, 1.0 - score), area_percent=float((anomaly_map >= 0.5).mean() * 100),
                          anomaly_map=anomaly_map, raw_map=raw_map, registered=ok)

    def map_in_image(self, roi_map: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
        """A ``size x size`` ROI map placed into full-image coordinates (zero outside the ROI)."""
        h, w = image_shape[:2]
        x, y, rw, rh = self.roi if self.roi is not None else (0, 0, w, h)
        full = np.zeros((h, w), np.float32)
        full[y:y + rh, x:x + rw] = cv2.resize(roi_map.astype(np.float32), (rw, rh), interpolation=cv2.INTER_LINEAR)
        return full

    def mask_in_image(self, prediction: Prediction, image_shape: tuple[int, ...]) -> np.ndarray:
        """The predicted mask (uint8, 255 = anomalous) in full-image coordinates (zero outside the ROI)."""
        return (self.map_in_image(prediction.anomaly_map, image_shape) >= 0.5).astype(np.uint8) * 255


def overlay(image: np.ndarray, anomaly_map: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Heat map (JET colours, 0..1) blended over a BGR image, with the 0.5 contour in white."""
    h, w = image.shape[:2]
    amap = cv2.resize(anomaly_map.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap(np.clip(amap * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    out = cv2.addWeighted(image, 1 - alpha, heat, alpha, 0)
    contours, _ = cv2.findContours((amap >= 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def write_png(path: Path, image: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise EdgeAppError(f"{path}: could not encode PNG")
    write_atomic(path, buf.tobytes())

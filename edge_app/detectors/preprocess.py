"""GluonCV's test-time preprocessing for fixed-size SSD / YOLOv3 inputs, in numpy + OpenCV.

GluonCV evaluates these nets with ``SSDDefaultValTransform`` / ``YOLO3DefaultValTransform``
(``gluoncv/data/transforms/presets/{ssd,yolo}.py``), which for an RGB uint8 image ``src`` of size
``H x W`` do::

    img = imresize(src, w, h, interp=9)          # plain stretch to (w, h), aspect ratio NOT kept
    img = mx.nd.image.to_tensor(img)             # HWC uint8 -> CHW float32 / 255
    img = mx.nd.image.normalize(img, mean, std)  # (x - mean) / std, ImageNet statistics

``interp=9`` is MXNet's "auto" rule (``mxnet.image.image._get_interp_method``): bicubic when both sides
grow, area when both sides shrink, bilinear otherwise. MXNet resizes with the OpenCV it bundles; the
flag numbers are OpenCV's own (1 linear, 2 cubic, 3 area), so we call ``cv2.resize`` with the same flag.

Measured difference against ``mx.image.imresize`` (mxnet 1.9.1 vs opencv-python 4.11, see
``tests/test_detector_preprocess.py``): area (every downscale, i.e. every real camera frame) and
bilinear are bit-identical; bicubic (only when a frame is smaller than the network input on both
sides) differs by at most 1 grey level on a few percent of pixels, from the two OpenCV versions'
fixed-point cubic kernels. After normalisation that is <= 1/(255 * 0.224) ~ 0.0175 on 1.5-4.5 % of the
input values. Effect on detections (``tests/test_detector_parity.py``, untrained He-initialised SSD and
YOLOv3, 250x200 frame upscaled to the input): median box IoU 0.996-0.998 against GluonCV's pipeline,
scores within 2.2e-3, 99 of 100 boxes matched (one NMS decision near the 100th row flips). Downscaled
frames give bit-identical tensors and identical detections.

The normalisation is folded into one multiply-add per value: ``x * (1 / (255 std)) - mean / std``,
which differs from MXNet's ``(x / 255 - mean) / std`` only by float32 rounding (~1e-7 relative).

``resize="linear"`` (config ``model.resize``) trades that exactness for speed: bilinear for every frame.
The area filter of a 640x480 -> 300x300 shrink costs ~1.4 ms of CPU per frame, bilinear ~0.3 ms, and with
decoding (~1.9 ms) that is most of what a frame costs outside inference. Our training
(``training/data.py``) draws the interpolation at random (bilinear, area, bicubic, nearest), so both modes
are in-distribution for the shipped model; ``edge-app eval --resize`` measures the mAP of either mode.

Boxes come back in network-input pixels ``(0..w, 0..h)``; because the resize is a plain stretch, the
inverse map to an ``H x W`` frame is a per-axis scale: ``x * W / w``, ``y * H / h``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)

# OpenCV interpolation flags, numbered as MXNet's ``interp`` argument.
INTER_LINEAR, INTER_CUBIC, INTER_AREA = cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA

# gluoncv: MXNet's interp=9 rule, bit-exact with GluonCV's evaluation; linear: bilinear always (faster).
RESIZE_MODES: tuple[str, ...] = ("gluoncv", "linear")


def checked_resize_mode(mode: str, name: str = "model.resize") -> str:
    """``mode`` if it is one of `RESIZE_MODES`, else the one-line user error naming ``name`` (key or flag)."""
    if mode not in RESIZE_MODES:
        from edge_app.errors import EdgeAppError

        raise EdgeAppError(f"{name}: expected one of {', '.join(RESIZE_MODES)} (got {mode!r})")
    return mode


def auto_interpolation(frame_hw: tuple[int, int], input_wh: tuple[int, int]) -> int:
    """MXNet's ``interp=9``: cubic to enlarge, area to shrink (both sides), bilinear otherwise."""
    old_h, old_w = frame_hw
    new_w, new_h = input_wh
    if new_h > old_h and new_w > old_w:
        return INTER_CUBIC
    if new_h < old_h and new_w < old_w:
        return INTER_AREA
    return INTER_LINEAR


def check_frame(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"expected a BGR uint8 frame of shape (H, W, 3), got shape {shape} dtype {dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"expected a non-empty frame, got shape {image.shape}")


def resize_like_gluoncv(image: np.ndarray, input_wh: tuple[int, int]) -> np.ndarray:
    """Stretch one HxWx3 uint8 image to ``input_wh`` with MXNet's auto interpolation."""
    return resize_frame(image, input_wh, "gluoncv")


def resize_frame(image: np.ndarray, input_wh: tuple[int, int], mode: str = "gluoncv") -> np.ndarray:
    """Stretch one HxWx3 uint8 image to ``input_wh``: GluonCV's interpolation rule, or bilinear (``linear``)."""
    w, h = input_wh
    if image.shape[1] == w and image.shape[0] == h:
        return image
    flag = auto_interpolation(image.shape[:2], input_wh) if mode == "gluoncv" else INTER_LINEAR
    return cv2.resize(image, (w, h), interpolation=flag)


class Preprocessor:
    """Batches BGR frames of any sizes into one normalised ``(B, 3, h, w)`` float32 array.

    Keeps its buffers between calls (the detector calls it once per batch), so steady-state
    preprocessing allocates nothing but the returned array.
    """

    def __init__(self, input_wh: tuple[int, int], mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, resize: str = "gluoncv") -> None:
        if resize not in RESIZE_MODES:
            raise ValueError(f"resize: expected one of {', '.join(RESIZE_MODES)}, got {resize!r}")
        self.input_wh = (int(input_wh[0]), int(input_wh[1]))
        self.resize = resize
        std_arr = np.asarray(std, np.float32)
        # Per-channel affine map in RGB order: value * scale + offset == (value / 255 - mean) / std.
        self._scale = (1.0 / (255.0 * std_arr)).astype(np.float32)
        self._offset = (-np.asarray(mean, np.float32) / std_arr).astype(np.float32)
        self._resized = np.empty((0, self.input_wh[1], self.input_wh[0], 3), np.uint8)

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        w, h = self.input_wh
        batch = len(images)
        if self._resized.shape[0] < batch:
            self._resized = np.empty((batch, h, w, 3), np.uint8)
        resized = self._resized[:batch]
        for i, image in enumerate(images):
            check_frame(image)
            resized[i] = resize_frame(image, self.input_wh, self.resize)
        out = np.empty((batch, 3, h, w), np.float32)
        for rgb_channel, bgr_channel in enumerate((2, 1, 0)):  # BGR frames -> RGB network input
            np.multiply(resized[..., bgr_channel], self._scale[rgb_channel], out=out[:, rgb_channel],
                        dtype=np.float32, casting="unsafe")
            out[:, rgb_channel] += self._offset[rgb_channel]
        return out


def preprocess_batch(images: Sequence[np.ndarray], input_wh: tuple[int, int], resize: str = "gluoncv") -> np.ndarray:
    """One-shot form of :class:`Preprocessor`: BGR uint8 frames -> ``(B, 3, h, w)`` float32, NCHW RGB."""
    return Preprocessor(input_wh, resize=resize)(images)


def boxes_to_frame(boxes: np.ndarray, input_wh: tuple[int, int], frame_hw: tuple[int, int]) -> np.ndarray:
    """Map ``(N, 4)`` ``[x1, y1, x2, y2]`` boxes from network-input pixels to frame pixels.

    The inverse of the stretch: ``x * W / w``, ``y * H / h``, then clipped to the frame
    ``[0, W] x [0, H]`` (continuous pixel coordinates: ``x2 == W`` is the right edge).
    """
    w, h = input_wh
    frame_h, frame_w = frame_hw
    scale = np.array([frame_w / w, frame_h / h, frame_w / w, frame_h / h], np.float32)
    mapped = np.asarray(boxes, np.float32).reshape(-1, 4) * scale
    np.clip(mapped[:, 0::2], 0.0, float(frame_w), out=mapped[:, 0::2])
    np.clip(mapped[:, 1::2], 0.0, float(frame_h), out=mapped[:, 1::2])
    return mapped


class PerThreadPreprocessing:
    """Shared by the ONNX Runtime and TensorRT detectors: one `Preprocessor` (and its buffers) per calling thread.

    The host needs ``input_size``, ``spec`` (with ``mean``, ``std``, ``model_version``) and ``_local``
    (a ``threading.local``), and may set ``resize``; detectors are called from several threads, buffers must
    not be shared.
    """

    input_size: tuple[int, int]
    resize: str = "gluoncv"
    spec: Any
    _local: Any

    @property
    def model_version(self) -> str:
        return self.spec.model_version

    def _preprocessor(self) -> Preprocessor:
        pre = getattr(self._local, "preprocessor", None)
        if pre is None:
            pre = self._local.preprocessor = Preprocessor(self.input_size, self.spec.mean, self.spec.std,
                                                          self.resize)
        return pre

"""Preprocessing on the decode threads (`edge_app.pipeline.split`): same results, right threads."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import CACHE

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app_fixtures import FRAME_H, FRAME_W, slot_detector_onnx  # noqa: E402

from edge_app.detections import Detections
from edge_app.frame import Frame
from edge_app.pipeline import Pipeline
from edge_app.pipeline.split import OrtPreparedDetector, PreparedDetector, prepared


@pytest.fixture(scope="module")
def ort_detector():  # noqa: ANN201 - OrtDetector
    from edge_app.detectors.onnx_detector import OrtDetector

    path = CACHE / "app" / "slot_detector.onnx"
    if not path.is_file():
        slot_detector_onnx(path)
    return OrtDetector.from_path(path, max_batch=3, score_threshold=0.5)


def frames_with_trays(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    images = []
    for i in range(n):
        image = np.full((FRAME_H, FRAME_W, 3), 20, np.uint8)
        for cell in rng.choice(16, size=i % 5, replace=False):
            r, c = divmod(int(cell), 4)
            image[r * 60 + 5:(r + 1) * 60 - 5, c * 80 + 5:(c + 1) * 80 - 5] = 255
        images.append(image)
    return images


def test_prepared_ort_detector_gives_the_same_detections_as_detect(ort_detector) -> None:  # noqa: ANN001
    split = prepared(ort_detector)
    assert isinstance(split, OrtPreparedDetector) and isinstance(split, PreparedDetector)
    images = frames_with_trays(7)  # 7 frames with max_batch 3: the chunking is exercised too
    expected = ort_detector.detect(images)
    got = split.detect_prepared(np.stack([split.preprocess(im) for im in images]), [im.shape[:2] for im in images])
    assert [len(d) for d in got] == [i % 5 for i in range(7)]
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.class_ids, b.class_ids)


def test_other_detectors_are_left_as_they_are() -> None:
    class Plain:
        def detect(self, images: list[np.ndarray]) -> list[Detections]:
            return [Detections.empty() for _ in images]

    plain = Plain()
    assert prepared(plain) is plain


@pytest.mark.parametrize("stack_ahead", [True, False])
def test_pipeline_splits_preprocess_inference_and_decoding_across_threads(ort_detector, stack_ahead: bool) -> None:  # noqa: ANN001
    split = prepared(ort_detector)
    threads_seen: set[str] = set()
    infer_threads: set[str] = set()
    decode_threads: set[str] = set()
    batch_shapes: list[tuple[int, ...]] = []

    class Spy(OrtPreparedDetector):
        def preprocess(self, image: np.ndarray) -> np.ndarray:
            threads_seen.add(threading.current_thread().name.split("-")[0])
            return super().preprocess(image)

        def detect_pending(self, batch: np.ndarray, frame_sizes: list) -> list:
            infer_threads.add(threading.current_thread().name.split("-")[0])
            batch_shapes.append(batch.shape)
            return super().detect_pending(batch, frame_sizes)

        def decode_row(self, outputs: list, row: int, frame_hw: tuple[int, int]) -> Detections:
            decode_threads.add(threading.current_thread().name.split("-")[0])
            return super().decode_row(outputs, row, frame_hw)

    spy = Spy(split.detector)
    images = frames_with_trays(12)
    counts: dict[str, list[int]] = {"a": [], "b": []}
    sources = {s: [Frame(s, i, i / 10, im) for i, im in enumerate(images)] for s in counts}
    handlers = {s: (lambda f, d, s=s: counts[s].append(len(d))) for s in counts}
    Pipeline(sources, [spy], handlers, max_batch=4, max_wait_s=0.005, stack_ahead=stack_ahead).run()
    assert threads_seen == {"decode"} and infer_threads == {"infer"} and decode_threads == {"post"}
    assert batch_shapes and all(shape[1:] == (3, 64, 64) and shape[0] <= 4 for shape in batch_shapes)
    assert counts["a"] == counts["b"] == [i % 5 for i in range(12)]


def test_prepared_detector_preprocesses_with_the_detectors_resize_mode_and_statistics() -> None:
    from edge_app.config import ModelConfig
    from edge_app.detectors.onnx_detector import OrtDetector
    from edge_app.errors import EdgeAppError

    path = CACHE / "app" / "slot_detector.onnx"
    if not path.is_file():
        slot_detector_onnx(path)
    image = np.random.default_rng(1).integers(0, 256, (FRAME_H, FRAME_W, 3), dtype=np.uint8)
    exact = prepared(OrtDetector.from_path(path))
    fast = prepared(OrtDetector.from_config(ModelConfig(path=path, resize="linear")))
    assert exact.resize == "gluoncv" and fast.resize == "linear"
    np.testing.assert_array_equal(exact.preprocess(image), exact._preprocessor()([image])[0])
    np.testing.assert_array_equal(fast.preprocess(image), fast._preprocessor()([image])[0])
    assert not np.array_equal(exact.preprocess(image), fast.preprocess(image))
    import dataclasses

    # the model's own statistics (ONNX metadata), not ImageNet's, are used
    before = exact.preprocess(image)
    exact.detector.spec = dataclasses.replace(exact.detector.spec, mean=(0.0, 0.0, 0.0))
    exact.detector._local = threading.local()
    shift = (exact.preprocess(image) - before).mean(axis=(1, 2))
    np.testing.assert_allclose(shift, np.array([0.485, 0.456, 0.406]) / np.array([0.229, 0.224, 0.225]), rtol=1e-4)
    with pytest.raises(EdgeAppError, match="model.resize"):
        OrtDetector.from_path(path, resize="area")


def test_tensorrt_detector_checks_the_resize_mode_before_touching_a_gpu() -> None:
    from edge_app.detectors.trt_detector import TrtDetector
    from edge_app.errors import EdgeAppError

    path = CACHE / "app" / "slot_detector.onnx"
    if not path.is_file():
        slot_detector_onnx(path)
    with pytest.raises(EdgeAppError, match="model.resize: expected one of gluoncv, linear"):
        TrtDetector(path, resize="area", runner=lambda batch: batch)

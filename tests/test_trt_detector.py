"""TensorRT backend: everything that needs no GPU, plus one real-engine test for GPU machines.

Without a GPU we check: the backend's clear error when tensorrt/pycuda are missing, engine cache keys,
optimisation-profile and buffer shapes computed from the real cut graph, the builder calls (against a
recording stand-in for the ``tensorrt`` module), and the post-engine decoding fed with recorded tensors
(the cut graph's output as ONNX Runtime computes it), compared with the ORT backend on the full graph.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from detector_models import exported, tray_scene, with_nms_input_output

from edge_app.config import ModelConfig
from edge_app.detectors import create_detector, graph_tools
from edge_app.detectors.onnx_detector import OrtDetector, make_session
from edge_app.detectors.trt_detector import (
    EngineKey,
    TensorSpec,
    TrtDetector,
    build_serialized_engine,
    engine_cache_path,
    plan_buffers,
    prepare_onnx_for_tensorrt,
    profile_shapes,
    require_tensorrt,
    tensorrt_static_issues,
)
from edge_app.errors import EdgeAppError

HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None and importlib.util.find_spec("pycuda") is not None


@pytest.mark.skipif(HAVE_TENSORRT, reason="tensorrt is installed here")
def test_tensorrt_backend_without_tensorrt_is_a_clear_error() -> None:
    with pytest.raises(EdgeAppError, match="tensorrt") as info:
        require_tensorrt()
    assert "onnxruntime" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(EdgeAppError, match="model.backend: 'tensorrt'"):
        create_detector(ModelConfig(path=exported("ssd"), backend="tensorrt"))


def test_engine_cache_key_changes_with_every_ingredient(tmp_path: Path) -> None:
    base = EngineKey("ab" * 32, "10.3.0", "NVIDIA Jetson Orin / AGX", 8)
    variants = [
        EngineKey("cd" * 32, "10.3.0", "NVIDIA Jetson Orin / AGX", 8),
        EngineKey("ab" * 32, "8.6.1", "NVIDIA Jetson Orin / AGX", 8),
        EngineKey("ab" * 32, "10.3.0", "Tesla T4", 8),
        EngineKey("ab" * 32, "10.3.0", "NVIDIA Jetson Orin / AGX", 4),
        EngineKey("ab" * 32, "10.3.0", "NVIDIA Jetson Orin / AGX", 8, precision="fp32"),
        EngineKey("ab" * 32, "10.3.0", "NVIDIA Jetson Orin / AGX", 8, graph_version="other"),
    ]
    names = {base.filename()} | {v.filename() for v in variants}
    assert len(names) == 1 + len(variants)
    assert base.filename() == EngineKey("ab" * 32, "10.3.0", "NVIDIA Jetson Orin / AGX", 8).filename()
    assert "/" not in base.filename() and " " not in base.filename()
    assert base.filename().startswith("abababababababab-trt10.3.0-nvidia-jetson-orin-agx-b8-fp16-")
    assert engine_cache_path(tmp_path, base).parent == tmp_path


def test_profile_and_buffers_for_the_cut_ssd_graph() -> None:
    model = onnx.load(exported("ssd"))
    prepared = prepare_onnx_for_tensorrt(model)
    assert graph_tools.is_cut_before_nms(prepared)
    assert not {n.op_type for n in prepared.graph.node} & {"NonMaxSuppression", "TopK"}
    assert [i.name for i in prepared.graph.input] == ["data"]  # weights are not inputs for the parser
    assert graph_tools.duplicate_node_names(prepared) == []

    minimum, optimum, maximum = profile_shapes((3, 300, 300), 4)
    assert minimum == (1, 3, 300, 300) and optimum == maximum == (4, 3, 300, 300)
    # What TensorRT reports for this graph: dynamic batch; anchors fixed by the input size (ORT tells us N).
    anchors = make_session(prepared).run(None, {"data": np.zeros((1, 3, 300, 300), np.float32)})[0].shape[1]
    tensors = [TensorSpec("data", (-1, 3, 300, 300), np.dtype(np.float32), True),
               TensorSpec(prepared.graph.output[0].name, (-1, anchors, 6), np.dtype(np.float32), False)]
    plan = plan_buffers(tensors, 4)
    assert [(b.name, b.shape, b.is_input) for b in plan] == [
        ("data", (4, 3, 300, 300), True), (prepared.graph.output[0].name, (4, anchors, 6), False)]
    assert plan[0].nbytes == 4 * 3 * 300 * 300 * 4 and plan[1].nbytes == 4 * anchors * 6 * 4
    with pytest.raises(ValueError, match="only the batch dimension"):
        plan_buffers([TensorSpec("x", (-1, -1, 6), np.dtype(np.float32), False)], 2)
    with pytest.raises(ValueError, match="fixed batch"):
        plan_buffers([TensorSpec("x", (2, 10, 6), np.dtype(np.float32), False)], 4)


@pytest.mark.parametrize("kind", ["ssd", "yolo3"])
def test_prepared_graph_passes_static_tensorrt_checks_and_still_computes_the_same(kind: str) -> None:
    model = onnx.load(exported(kind))
    full_issues = tensorrt_static_issues(model)
    assert any("opset 19" in i for i in full_issues)
    assert any("NonMaxSuppression" in i for i in full_issues)
    assert any("TopK" in i and "K must be a constant" in i for i in full_issues)
    prepared = prepare_onnx_for_tensorrt(model)
    assert tensorrt_static_issues(prepared) == []
    assert [o.version for o in prepared.opset_import if o.domain in ("", "ai.onnx")] == [17]
    onnx.checker.check_model(prepared)
    x = np.random.default_rng(0).normal(size=(2, 3, *(int(v) for v in reversed(
        [graph_tools.read_metadata(model)["input_width"], graph_tools.read_metadata(model)["input_height"]])))
    ).astype(np.float32)
    at_17 = make_session(prepared).run(None, {"data": x})[0]
    at_19 = make_session(graph_tools.cut_before_nms(model)).run(None, {"data": x})[0]
    np.testing.assert_allclose(at_17, at_19, rtol=1e-4, atol=5e-3, equal_nan=True)


class _Recorder:
    """A stand-in for the ``tensorrt`` module that records the builder calls."""

    def __init__(self, fast_fp16: bool = True, parse_ok: bool = True) -> None:
        self.calls: list[tuple] = []
        rec = self
        self.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda s, level: None})
        self.NetworkDefinitionCreationFlag = SimpleNamespace(EXPLICIT_BATCH=0)
        self.MemoryPoolType = SimpleNamespace(WORKSPACE="WORKSPACE")
        self.BuilderFlag = SimpleNamespace(FP16="FP16")

        class Profile:
            def set_shape(self, name, mn, opt, mx):
                rec.calls.append(("set_shape", name, mn, opt, mx))

        class Config:
            def set_memory_pool_limit(self, pool, size):
                rec.calls.append(("set_memory_pool_limit", pool, size))

            def set_flag(self, flag):
                rec.calls.append(("set_flag", flag))

            def add_optimization_profile(self, profile):
                rec.calls.append(("add_optimization_profile",))

        class Builder:
            platform_has_fast_fp16 = fast_fp16

            def __init__(self, logger):
                pass

            def create_network(self, flags):
                rec.calls.append(("create_network", flags))
                return "network"

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                rec.calls.append(("build_serialized_network", network))
                return b"engine-bytes"

        class Parser:
            num_errors = 0 if parse_ok else 1

            def __init__(self, network, logger):
                pass

            def parse(self, data):
                rec.calls.append(("parse", len(data)))
                return parse_ok

            def get_error(self, i):
                return "In node 12 (NonMaxSuppression): unsupported"

        self.Builder, self.OnnxParser = Builder, Parser


def test_build_serialized_engine_uses_explicit_batch_profile_fp16_and_workspace() -> None:
    trt = _Recorder()
    engine = build_serialized_engine(trt, b"onnx", "data", (3, 300, 300), 8, workspace_mb=256)
    assert engine == b"engine-bytes"
    assert ("create_network", 1) in trt.calls  # 1 << EXPLICIT_BATCH(0)
    assert ("set_memory_pool_limit", "WORKSPACE", 256 << 20) in trt.calls
    assert ("set_flag", "FP16") in trt.calls
    assert ("set_shape", "data", (1, 3, 300, 300), (8, 3, 300, 300), (8, 3, 300, 300)) in trt.calls
    assert ("add_optimization_profile",) in trt.calls

    no_fp16 = _Recorder(fast_fp16=False)
    build_serialized_engine(no_fp16, b"onnx", "data", (3, 300, 300), 2)
    assert ("set_flag", "FP16") not in no_fp16.calls
    with pytest.raises(EdgeAppError, match="NonMaxSuppression"):
        build_serialized_engine(_Recorder(parse_ok=False), b"onnx", "data", (3, 300, 300), 2)


@pytest.mark.parametrize("kind", ["ssd", "yolo3-he"])
def test_decoding_recorded_engine_outputs_equals_ort_backend(kind: str) -> None:
    """TrtDetector's host side (preprocess, chunking, host NMS, mapping) fed with the cut graph's tensors."""
    path = exported(kind)
    # The recorded "engine output" is the pre-NMS tensor, taken from the same session run as the ORT
    # backend's full graph, so any difference below comes from the host side, not from float rounding.
    probe = make_session(with_nms_input_output(onnx.load(path)))
    recorded: list[np.ndarray] = []

    def recorded_engine(batch: np.ndarray) -> np.ndarray:
        assert batch.dtype == np.float32 and batch.ndim == 4 and len(batch) <= 2
        rows = probe.run(None, {"data": batch})[3]
        recorded.append(rows)
        return rows

    frames = [tray_scene(480, 640, 0), tray_scene(720, 1280, 1), tray_scene(200, 250, 2)]
    trt_like = TrtDetector(path, score_threshold=0.0, max_batch=2, runner=recorded_engine)
    ort = OrtDetector.from_path(path, score_threshold=0.0, max_batch=2)  # same chunks: same float rounding
    assert [len(r) for r in recorded] == [] and trt_like.class_names == ort.class_names == ("tray",)
    got, expected = trt_like.detect(frames), ort.detect(frames)
    assert [len(r) for r in recorded] == [2, 1]  # max_batch chunking
    for a, b in zip(got, expected, strict=True):
        assert len(a) == len(b) > 0
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.class_ids, b.class_ids)


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_TENSORRT, reason="needs tensorrt + pycuda + a CUDA GPU")
def test_real_engine_matches_ort_and_is_cached(tmp_path: Path) -> None:  # pragma: no cover - GPU machines only
    path = exported("ssd")
    frames = [tray_scene(480, 640, 0), tray_scene(720, 1280, 1), tray_scene(200, 250, 2)]
    trt_detector = TrtDetector(path, score_threshold=0.0, max_batch=2, cache_dir=tmp_path)
    engine_file = trt_detector.runner.engine_path
    assert engine_file.is_file()
    got = trt_detector.detect(frames)
    expected = OrtDetector.from_path(path, score_threshold=0.0).detect(frames)
    for a, b in zip(got, expected, strict=True):
        assert abs(len(a) - len(b)) <= max(2, len(b) // 20)  # FP16 may flip a few NMS decisions
        # FP16 tolerance: scores within 1e-2, every TRT box overlaps an ORT box with IoU >= 0.9
        from test_detector_parity import iou_matrix

        iou = iou_matrix(a.boxes, b.boxes)
        assert (iou.max(axis=1) >= 0.9).mean() >= 0.95
    mtime = engine_file.stat().st_mtime_ns
    again = TrtDetector(path, score_threshold=0.0, max_batch=2, cache_dir=tmp_path)
    assert again.runner.engine_path == engine_file and engine_file.stat().st_mtime_ns == mtime

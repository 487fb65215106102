"""The `Detector` interface, `create_detector`, model-file validation and metadata precedence."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from detector_models import exported, tray_scene
from onnx import helper

from edge_app.config import ModelConfig
from edge_app.detectors import Detector, create_detector, graph_tools
from edge_app.detectors.onnx_detector import OrtDetector
from edge_app.errors import EdgeAppError


def _copy_with_metadata(src: Path, dst: Path, metadata: dict[str, str] | None) -> Path:
    model = onnx.load(src)
    del model.metadata_props[:]
    if metadata:
        graph_tools.set_metadata(model, metadata)
    onnx.save(model, dst)
    return dst


def test_create_detector_returns_an_ort_detector_following_the_protocol() -> None:
    detector = create_detector(ModelConfig(path=exported("ssd"), score_threshold=0.0, batch_size=3))
    assert isinstance(detector, OrtDetector) and isinstance(detector, Detector)
    assert detector.max_batch == 3 and detector.input_size == (300, 300)
    assert detector.class_names == ("tray",)
    assert detector.model_version.startswith("untrained-ssd_300_mobilenet0.25_custom")
    assert detector.optimization == "basic" and "CPUExecutionProvider" in detector.providers


def test_model_metadata_overrides_config_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    cfg = ModelConfig(path=exported("yolo3"), input_size=(416, 416), class_names=["box", "hand"])
    with caplog.at_level(logging.INFO):
        detector = create_detector(cfg)
    assert detector.class_names == ("tray",) and detector.input_size == (320, 320)
    assert "overrides model.input_size" in caplog.text and "override model.class_names" in caplog.text


def test_without_metadata_graph_dims_and_config_names_apply(tmp_path: Path) -> None:
    bare = _copy_with_metadata(exported("yolo3"), tmp_path / "bare.onnx", None)
    detector = create_detector(ModelConfig(path=bare, input_size=(416, 416), class_names=["box"]))
    assert detector.input_size == (320, 320)  # fixed in the graph's input dims
    assert detector.class_names == ("box",)
    assert detector.model_version.startswith("sha256:")


@pytest.mark.parametrize(("metadata", "message"), [
    ({"class_names": "tray"}, "class_names: expected a JSON list of strings"),
    ({"input_width": "300", "input_height": "abc"}, "expected two integers"),
    ({"input_width": "416", "input_height": "416"}, "contradict the graph's fixed input"),
])
def test_bad_metadata_is_a_clear_error(tmp_path: Path, metadata, message) -> None:
    path = _copy_with_metadata(exported("ssd"), tmp_path / "bad.onnx", metadata)
    with pytest.raises(EdgeAppError, match=message):
        create_detector(ModelConfig(path=path))


def test_missing_and_non_onnx_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(EdgeAppError, match="model.path: file not found"):
        create_detector(ModelConfig(path=tmp_path / "nope.onnx"))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01 this is not protobuf \xff" * 10)
    with pytest.raises(EdgeAppError, match="not an ONNX model"):
        create_detector(ModelConfig(path=garbage))


def _tiny_model(path: Path, inputs, outputs, nodes) -> Path:
    graph = helper.make_graph(nodes, "tiny", inputs, outputs)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_unexpected_inputs_or_outputs_are_clear_errors(tmp_path: Path) -> None:
    f = onnx.TensorProto.FLOAT
    two_inputs = _tiny_model(tmp_path / "two.onnx",
                             [helper.make_tensor_value_info("a", f, [1, 3, 8, 8]),
                              helper.make_tensor_value_info("b", f, [1, 3, 8, 8])],
                             [helper.make_tensor_value_info("c", f, [1, 3, 8, 8])],
                             [helper.make_node("Add", ["a", "b"], ["c"])])
    with pytest.raises(EdgeAppError, match=r"inputs: expected one image input of shape \(batch, 3, height, width\)"):
        create_detector(ModelConfig(path=two_inputs))
    classifier = _tiny_model(tmp_path / "cls.onnx", [helper.make_tensor_value_info("x", f, [None, 3, 8, 8])],
                             [helper.make_tensor_value_info("y", f, [None, 3, 8, 8])],
                             [helper.make_node("Relu", ["x"], ["y"])])
    with pytest.raises(EdgeAppError, match="outputs: expected GluonCV detector outputs"):
        create_detector(ModelConfig(path=classifier))


def test_batched_detect_equals_one_by_one_for_frames_of_different_sizes() -> None:
    frames = [tray_scene(480, 640, 0), tray_scene(1080, 1920, 1), tray_scene(240, 320, 2), tray_scene(600, 300, 3)]
    batched = OrtDetector.from_path(exported("yolo3"), score_threshold=0.0, max_batch=3)
    single = OrtDetector.from_path(exported("yolo3"), score_threshold=0.0, max_batch=1)
    together = batched.detect(frames)
    for frame, det in zip(frames, together, strict=True):
        (alone,) = single.detect([frame])
        assert len(det) == len(alone) > 0
        np.testing.assert_allclose(det.boxes, alone.boxes, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(det.scores, alone.scores, atol=1e-6)
        h, w = frame.shape[:2]
        assert det.boxes[:, [0, 2]].max() <= w and det.boxes[:, [1, 3]].max() <= h and det.boxes.min() >= 0
    assert batched.detect([]) == []


def test_score_threshold_filters_and_cut_graph_loads_in_ort(tmp_path: Path) -> None:
    frames = [tray_scene(480, 640, 0)]
    assert len(OrtDetector.from_path(exported("yolo3"), score_threshold=0.3).detect(frames)[0]) == 0  # all 0.25
    assert len(OrtDetector.from_path(exported("yolo3"), score_threshold=0.2).detect(frames)[0]) > 0
    cut = graph_tools.cut_before_nms(onnx.load(exported("ssd")))
    onnx.save(cut, tmp_path / "cut.onnx")
    via_cut = OrtDetector.from_path(tmp_path / "cut.onnx", score_threshold=0.0).detect(frames)[0]
    full = OrtDetector.from_path(exported("ssd"), score_threshold=0.0).detect(frames)[0]
    np.testing.assert_array_equal(via_cut.boxes, full.boxes)
    assert json.loads(graph_tools.read_metadata(cut)["class_names"]) == ["tray"]
    # The pipeline's split path decodes each frame's row on its own (host NMS per row for the cut graph).
    from edge_app.pipeline.split import prepared

    two = [frames[0], tray_scene(480, 640, 1)]
    for detector in (OrtDetector.from_path(tmp_path / "cut.onnx", score_threshold=0.0, max_batch=2),
                     OrtDetector.from_path(exported("ssd"), score_threshold=0.0, max_batch=2)):
        split = prepared(detector)
        pending = split.detect_pending(np.stack([split.preprocess(f) for f in two]), [f.shape[:2] for f in two])
        for expected, later in zip(detector.detect(two), pending, strict=True):
            got = later.resolve()
            assert len(got) == len(expected) > 0
            np.testing.assert_array_equal(got.boxes, expected.boxes)
            np.testing.assert_array_equal(got.scores, expected.scores)


def test_preprocess_metadata_from_training_is_checked(tmp_path: Path) -> None:
    training_like = {"color": "RGB", "resize": "stretch", "scale": 1 / 255, "mean": [0.5, 0.5, 0.5],
                     "std": [0.25, 0.25, 0.25], "layout": "NCHW"}
    ok = _copy_with_metadata(exported("ssd"), tmp_path / "ok.onnx", {"preprocess": json.dumps(training_like)})
    detector = create_detector(ModelConfig(path=ok))
    assert detector.spec.mean == (0.5, 0.5, 0.5) and detector.spec.std == (0.25, 0.25, 0.25)
    batch = detector._preprocessor()([np.full((8, 8, 3), 255, np.uint8)])
    np.testing.assert_allclose(batch, 2.0, rtol=1e-6)  # (1 - 0.5) / 0.25
    letterbox = _copy_with_metadata(exported("ssd"), tmp_path / "lb.onnx",
                                    {"preprocess": json.dumps({**training_like, "resize": "letterbox"})})
    with pytest.raises(EdgeAppError, match="metadata_props: preprocess: expected RGB, stretch"):
        create_detector(ModelConfig(path=letterbox))

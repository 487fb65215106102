"""Graph repairs and the NMS cut, proved on ONNX Runtime with the cached untrained GluonCV exports."""

from __future__ import annotations

from unittest.mock import patch

import numpy as np
import onnx
import pytest
from detector_models import assert_same_detections, exported, tray_scene, with_nms_input_output
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_app.detectors import graph_tools, nms
from edge_app.detectors.nms import NmsParams, batched_box_nms
from edge_app.detectors.onnx_detector import make_session
from edge_app.detectors.preprocess import preprocess_batch


@pytest.fixture(scope="module", params=["ssd", "yolo3", "ssd-he", "yolo3-he"])
def model(request) -> onnx.ModelProto:
    return onnx.load(exported(request.param))


@pytest.fixture(scope="module")
def ssd_model() -> onnx.ModelProto:
    return onnx.load(exported("ssd"))


def _inputs(model: onnx.ModelProto) -> np.ndarray:
    meta = graph_tools.read_metadata(model)
    size = (int(meta["input_width"]), int(meta["input_height"]))
    frames = [tray_scene(480, 640, 0), tray_scene(720, 1280, 1), tray_scene(240, 200, 2)]
    noise = np.random.default_rng(3).normal(size=(1, 3, size[1], size[0])).astype(np.float32)
    return np.concatenate([preprocess_batch(frames, size), noise])


def test_dedupe_node_names_makes_enable_all_work_with_identical_outputs(ssd_model: onnx.ModelProto) -> None:
    import onnxruntime as ort

    assert graph_tools.duplicate_node_names(ssd_model)  # the exporter leaves names empty
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    with pytest.raises(Exception, match="same node name"):
        ort.InferenceSession(ssd_model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    repaired = graph_tools.dedupe_node_names(ssd_model)
    assert graph_tools.duplicate_node_names(repaired) == []
    assert all(node.name for node in repaired.graph.node)
    assert [n.op_type for n in repaired.graph.node] == [n.op_type for n in ssd_model.graph.node]
    onnx.checker.check_model(repaired)
    all_session = ort.InferenceSession(repaired.SerializeToString(), options, providers=["CPUExecutionProvider"])
    x = _inputs(ssd_model)
    basic = make_session(ssd_model, "basic").run(None, {"data": x})
    full = all_session.run(None, {"data": x})
    for a, b in zip(basic, full, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_repair_for_ort_matches_basic(model: onnx.ModelProto) -> None:
    repaired = graph_tools.repair_for_ort(model)
    weights = {init.name for init in repaired.graph.initializer}
    assert not any(inp.name in weights for inp in repaired.graph.input)
    assert [i.name for i in repaired.graph.input] == ["data"]
    x = _inputs(model)
    probe = with_nms_input_output(model)
    basic = make_session(probe, "basic").run(None, {"data": x})
    optimized = make_session(probe, "all").run(None, {"data": x})
    # Fused kernels round differently: pre-NMS rows agree to float32 noise, detections as matched sets.
    np.testing.assert_allclose(basic[3], optimized[3], rtol=1e-4, atol=5e-3, equal_nan=True)
    assert_same_detections(basic[:3], optimized[:3])


def test_read_nms_params_from_exported_graph(model: onnx.ModelProto) -> None:
    params = graph_tools.read_nms_params(model)
    # GluonCV SSD/YOLOv3 defaults: nms_thresh 0.45, nms_topk 400, post_nms 100, valid_thresh 0.01
    assert params.overlap_thresh == pytest.approx(0.45)
    assert params.valid_thresh == pytest.approx(0.01)
    assert params.topk == 400
    assert params.post_nms == 100


def test_cut_graph_plus_host_nms_equals_full_graph(model: onnx.ModelProto) -> None:
    cut = graph_tools.cut_before_nms(model)
    onnx.checker.check_model(cut)
    assert graph_tools.is_cut_before_nms(cut)
    ops = {node.op_type for node in cut.graph.node}
    assert not ops & {"NonMaxSuppression", "TopK"}
    assert graph_tools.read_metadata(cut)["class_names"] == graph_tools.read_metadata(model)["class_names"]
    x = _inputs(model)
    # 1) The NMS itself: host NMS on the exact rows the full graph's NMS saw gives bit-identical outputs.
    *full, rows_in_full = make_session(with_nms_input_output(model)).run(None, {"data": x})
    host = batched_box_nms(rows_in_full, graph_tools.read_nms_params(cut))
    for name, a, b in zip(("ids", "scores", "boxes"), full, host, strict=True):
        assert a.shape == b.shape, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert (full[0] >= 0).sum() > 0  # the comparison covered real detections, not only padding
    # 2) The cut graph computes those rows (its own session fuses differently: float32 noise only).
    rows = make_session(cut).run(None, {"data": x})[0]
    assert rows.shape == rows_in_full.shape and rows.shape[2] == 6
    np.testing.assert_array_equal(rows[..., 0], rows_in_full[..., 0])
    np.testing.assert_allclose(rows, rows_in_full, rtol=1e-4, atol=5e-3, equal_nan=True)
    # 3) End to end, cut graph + host NMS vs the full graph, as detections.
    assert_same_detections(full, list(batched_box_nms(rows, graph_tools.read_nms_params(cut))))


def _rows_strategy():
    coords = st.sampled_from([0.0, 5.0, 10.0, 12.5, 20.0, 40.0])
    row = st.tuples(st.sampled_from([-1.0, 0.0]), st.sampled_from([0.0, 0.01, 0.2, 0.5, 0.5, 0.9]),
                    coords, coords, st.sampled_from([5.0, 10.0, 20.0, 30.0]), st.sampled_from([5.0, 10.0, 20.0]))
    return st.lists(row, min_size=1, max_size=30)


@settings(max_examples=60, deadline=None)
@given(rows=_rows_strategy(), flip=st.booleans())
def test_host_nms_equals_exported_nms_tail_on_synthetic_rows(ssd_model: onnx.ModelProto, rows, flip) -> None:
    """Ties in score, identical boxes, IoU exactly at thresholds, flipped corners, rows at valid_thresh."""
    tail = graph_tools.nms_tail(ssd_model)
    array = np.array([[r[0], r[1], r[2], r[3], r[2] + r[4], r[3] + r[5]] for r in rows], np.float32)
    if flip:
        array[:, [2, 4]] = array[:, [4, 2]]
    batch = np.stack([array, array[::-1]])
    expected = _tail_session(tail).run(None, {tail.graph.input[0].name: batch})
    params = graph_tools.read_nms_params(ssd_model)
    for block in (nms.BLOCK, 4):  # the real block size, and one small enough that kept boxes span blocks
        with patch.object(nms, "BLOCK", block):
            got = batched_box_nms(batch, params)
        for a, b in zip(expected, got, strict=True):
            np.testing.assert_array_equal(a, b)


def test_host_nms_equals_exported_nms_tail_on_many_rows(ssd_model: onnx.ModelProto) -> None:
    """More candidates than topk (400) and than one block, clustered so NMS suppresses across blocks."""
    rng = np.random.default_rng(11)
    n = 3000
    centres = rng.uniform(0, 300, (40, 2))[rng.integers(0, 40, n)] + rng.normal(0, 6, (n, 2))
    sizes = rng.uniform(10, 60, (n, 2))
    rows = np.concatenate([np.zeros((n, 1)), np.round(rng.uniform(0, 1, (n, 1)), 2),
                           centres - sizes / 2, centres + sizes / 2], axis=1).astype(np.float32)[None]
    tail = graph_tools.nms_tail(ssd_model)
    expected = _tail_session(tail).run(None, {tail.graph.input[0].name: rows})
    got = batched_box_nms(rows, graph_tools.read_nms_params(ssd_model))
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)
    assert (expected[0] >= 0).sum() == 100  # post_nms rows filled: the limit, not the candidates, ended NMS


_SESSIONS: dict[int, object] = {}


def _tail_session(tail: onnx.ModelProto):
    key = hash(tail.SerializeToString())
    if key not in _SESSIONS:
        _SESSIONS[key] = make_session(tail)
    return _SESSIONS[key]


def test_host_nms_topk_modes_differ_only_past_topk() -> None:
    # Three boxes on one spot and one elsewhere; topk=2.
    rows = np.array([[0, 0.9, 0, 0, 10, 10], [0, 0.8, 0, 0, 10, 10], [0, 0.7, 50, 50, 60, 60],
                     [0, 0.6, 80, 80, 90, 90]], np.float32)[None]
    onnx_like = batched_box_nms(rows, NmsParams(topk=2, post_nms=4, topk_mode="onnx"))[1][0, :, 0]
    mxnet_like = batched_box_nms(rows, NmsParams(topk=2, post_nms=4, topk_mode="mxnet"))[1][0, :, 0]
    np.testing.assert_allclose(onnx_like, [0.9, 0.7, -1, -1])  # at most 2 survivors, searched over all
    np.testing.assert_allclose(mxnet_like, [0.9, -1, -1, -1])  # only the 2 best enter NMS

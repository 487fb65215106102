"""Build the scoring graph (filter bank -> Mahalanobis -> smoothing -> map and score) with `onnx.helper`.

The graph mirrors `features.extract_features`, `model.mahalanobis_grid` and `model.smooth_and_upsample` op for
op, so ONNX Runtime and TensorRT run exactly what the numpy reference computes (tests check parity). Only
standard opset-13 operators are used: ReduceMean, Sub, Mul, Sqrt, Add, Div, Conv, AveragePool, Abs, Concat,
Reshape, Transpose, MatMul, ReduceSum, Resize, ReduceMax, Sigmoid.

Inputs: ``image`` float32 ``(N, 3, S, S)``, BGR, 0..255, already registered to the golden reference, and
``valid`` float32 ``(N, 1, S, S)``, 1 where the registered ROI has real image content (0 in the band that the
warp brought in from outside the ROI, eroded by a safety margin; see `registration.valid_mask`); the map is
zeroed there so border artefacts of registration are never reported.
Outputs: ``anomaly_map`` ``(N, 1, S, S)`` and ``score`` ``(N,)`` normalized so the threshold is 0.5, plus
``raw_map`` and ``raw_score`` (Mahalanobis units) for evaluation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge_app.anomaly.features import GREY_WEIGHTS_BGR, PHOTOMETRIC_EPS, FeatureSpec, derivative_kernels
from edge_app.anomaly.model import GaussianField, smoothing_kernel, smoothing_normalizer
from edge_app.anomaly.threshold import Calibration

OPSET = 13


def build_graph(spec: FeatureSpec, field: GaussianField, sigma_cells: float,
                calibration: Calibration) -> onnx.ModelProto:
    """The complete scoring model; see the module docstring for inputs and outputs."""
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs: object) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def pool(x: str, k: int, name: str) -> str:
        return x if k == 1 else node("AveragePool", [x], name, kernel_shape=[k, k], strides=[k, k])

    grid, dim, size = spec.grid, spec.dim, spec.size
    # 1. photometric normalization
    mean = node("ReduceMean", ["image"], "img_mean", axes=[1, 2, 3], keepdims=1)
    centred = node("Sub", ["image", mean], "img_centred")
    var = node("ReduceMean", [node("Mul", [centred, centred], "img_sq")], "img_var", axes=[1, 2, 3], keepdims=1)
    std = node("Add", [node("Sqrt", [var], "img_std0"), const("eps", np.array(PHOTOMETRIC_EPS, np.float32))],
               "img_std")
    x = node("Div", [centred, std], "img_norm")
    # 2. colour and 3. Gaussian-derivative pyramid
    parts = [pool(x, spec.patch, "colour")]
    level = node("Conv", [x, const("grey_w", GREY_WEIGHTS_BGR.reshape(1, 3, 1, 1))], "grey0")
    kernels = const("deriv_k", derivative_kernels(spec.sigma, spec.radius)[:, None])
    r = spec.radius
    for lvl in range(spec.levels):
        if lvl:
            level = pool(level, 2, f"grey{lvl}")
        resp = node("Conv", [level, kernels], f"resp{lvl}", pads=[r, r, r, r])
        absr = node("Abs", [resp], f"abs{lvl}")
        parts += [pool(resp, spec.patch >> lvl, f"resp{lvl}_p"), pool(absr, spec.patch >> lvl, f"abs{lvl}_p")]
    feats = node("Concat", parts, "features", axis=1)
    # 4. Mahalanobis distance per cell: ||(f - mu) W||
    flat = node("Reshape", [feats, const("shape_ndl", np.array([0, dim, grid * grid], np.int64))], "feat_flat")
    lnd = node("Transpose", [flat], "feat_lnd", perm=[2, 0, 1])
    diff = node("Sub", [lnd, const("mu", field.mean[:, None, :].astype(np.float32))], "feat_diff")
    white = node("MatMul", [diff, const("whitener", field.whitener.astype(np.float32))], "whitened")
    sq = node("ReduceSum", [node("Mul", [white, white], "white_sq"), const("axis2", np.array([2], np.int64))],
              "maha_sq", keepdims=0)
    dist = node("Transpose", [node("Sqrt", [sq], "maha")], "maha_nl", perm=[1, 0])
    grid_map = node("Reshape", [dist, const("shape_grid", np.array([0, 1, grid, grid], np.int64))], "grid_map")
    # 5. normalized smoothing and upsampling
    kernel = smoothing_kernel(sigma_cells)
    kr = kernel.shape[0] // 2
    smooth = node("Conv", [grid_map, const("smooth_k", kernel[None, None])], "smooth0", pads=[kr, kr, kr, kr])
    smooth = node("Div", [smooth, const("smooth_norm", smoothing_normalizer(grid, kernel)[None, None])], "smooth")
    scales = const("up_scales", np.array([1, 1, spec.patch, spec.patch], np.float32))
    upsampled = node("Resize", [smooth, "", scales], "upsampled", mode="linear",
                     coordinate_transformation_mode="half_pixel")
    raw_map = node("Mul", [upsampled, "valid"], "raw_map")  # 0 where registration left no image content
    raw_score = node("ReduceMax", [raw_map], "raw_score", axes=[1, 2, 3], keepdims=0)
    # 6. logistic normalization around the threshold
    t = const("threshold", np.array(calibration.threshold, np.float32))
    s = const("norm_scale", np.array(calibration.scale, np.float32))
    node("Sigmoid", [node("Div", [node("Sub", [raw_map, t], "map_c"), s], "map_z")], "anomaly_map")
    node("Sigmoid", [node("Div", [node("Sub", [raw_score, t], "score_c"), s], "score_z")], "score")

    graph = helper.make_graph(
        nodes, "edge_app_anomaly",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, size, size]),
         helper.make_tensor_value_info("valid", TensorProto.FLOAT, ["batch", 1, size, size])],
        [helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, ["batch", 1, size, size]),
         helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"]),
         helper.make_tensor_value_info("raw_map", TensorProto.FLOAT, ["batch", 1, size, size]),
         helper.make_tensor_value_info("raw_score", TensorProto.FLOAT, ["batch"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="edge-app-anomaly")
    model.ir_version = 8  # readable by onnxruntime >= 1.10 and TensorRT 8.x
    onnx.checker.check_model(model)
    return model


def save_model(model: onnx.ModelProto, path: Path) -> None:
    """Atomic write: temp file, fsync, rename."""
    import os

    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(model.SerializeToString())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def make_session(path: Path | bytes, threads: int = 0):  # noqa: ANN201 (onnxruntime imported lazily)
    """ONNX Runtime CPU session (basic graph optimizations, as for the detector graphs)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    source = str(path) if isinstance(path, Path) else path
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])

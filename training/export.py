"""Export a trained GluonCV detector: MXNet symbol/params, ONNX (dynamic batch, metadata), FP16 ONNX.

The ONNX file is self-describing so the edge app needs no side files: ``metadata_props`` carry
``class_names`` (JSON list), ``input_width``, ``input_height``, ``model_version``, ``architecture`` and
``preprocess`` (JSON: RGB, stretch resize, ``(x/255 - mean)/std``, NCHW) and ``outputs``.

The graph takes ``data`` ``(N, 3, H, W)`` float32 and returns three tensors: class ids ``(N, K, 1)``
(-1 = no detection), scores ``(N, K, 1)`` and boxes ``(N, K, 4)`` as ``[x1, y1, x2, y2]`` in pixels of the
network input. NMS is inside the graph (class-agnostic after export).

FP16: ``onnxconverter_common.float16.convert_float_to_float16(keep_io_types=True)`` casts weights and compute
to half precision but keeps float32 inputs/outputs, so the same pre/post-processing serves both files. Ops
that have no FP16 kernel in ONNX Runtime's CPU provider, or whose numerics break in half precision (NMS,
box decoding, anchor arithmetic) are kept in FP32 through ``op_block_list``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

FP16_OPS = {"Conv", "BatchNormalization", "Relu", "Add", "Pad", "Concat", "Transpose", "Flatten", "Reshape"}
"""Ops run in half precision: the convolutional backbone and prediction heads, where nearly all the
weights and FLOPs are. Box decoding, anchors and NMS stay FP32 (exp/log of offsets and IoU arithmetic
lose too much in FP16 and gain nothing)."""


def export_mxnet(net, prefix: Path, input_size: tuple[int, int]) -> tuple[Path, Path]:
    """``net.export``: ``<prefix>-symbol.json`` and ``<prefix>-0000.params`` (inference branch)."""
    import mxnet as mx

    net.hybridize(static_alloc=False, static_shape=False)
    net(mx.nd.zeros((1, 3, input_size[1], input_size[0])))  # builds the inference graph
    net.export(str(prefix), epoch=0)
    return Path(f"{prefix}-symbol.json"), Path(f"{prefix}-0000.params")


def export_onnx(symbol: Path, params: Path, out: Path, input_size: tuple[int, int], metadata: dict[str, str]) -> Path:
    """MXNet -> ONNX with a dynamic batch dimension, then write ``metadata_props``."""
    import mxnet as mx
    import onnx

    width, height = input_size
    tmp = out.with_suffix(".tmp.onnx")
    mx.onnx.export_model(str(symbol), str(params), [(1, 3, height, width)], [np.float32], str(tmp),
                         dynamic=True, dynamic_input_shapes=[(None, 3, height, width)])
    model = onnx.load(str(tmp))
    set_metadata(model, metadata)
    onnx.save(model, str(out))
    tmp.unlink(missing_ok=True)
    return out


def set_metadata(model, metadata: dict[str, str]) -> None:
    del model.metadata_props[:]
    for key, value in metadata.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, str(value)


def model_metadata(class_names: Sequence[str], input_size: tuple[int, int], version: str, arch: str,
                   mean: Sequence[float], std: Sequence[float]) -> dict[str, str]:
    return {
        "class_names": json.dumps(list(class_names)),
        "input_width": str(input_size[0]),
        "input_height": str(input_size[1]),
        "model_version": version,
        "architecture": arch,
        "preprocess": json.dumps({"color": "RGB", "resize": "stretch", "scale": 1 / 255, "mean": list(mean),
                                  "std": list(std), "layout": "NCHW"}),
        "outputs": json.dumps(["class_ids", "scores", "boxes_xyxy_input_pixels"]),
    }


def export_fp16(src: Path, out: Path) -> Path:
    """FP16 copy of an ONNX model with FP32 inputs/outputs; metadata is carried over.

    Own cast pass instead of ``onnxconverter_common.float16``: on these MXNet-exported graphs the
    converter either runs shape inference for minutes or (with it disabled) leaves FP16/FP32 mismatches
    (``Mul`` bound to both types) that ONNX Runtime rejects. The pass is simple and exact about types:

    1. the "half region" is every node of a type in `FP16_OPS` that only reads activations from the
       conv trunk (a node whose float inputs are all initializers, the graph input or other region
       nodes' outputs, transitively from the input through convolutions);
    2. float32 initializers read only by region nodes are stored as float16 (halves the file);
    3. a ``Cast`` to float16 is inserted where a region node reads a float32 tensor from outside, and a
       ``Cast`` back to float32 where a region tensor leaves the region, under the original name, so the
       decoder and NMS see exactly the tensors they saw before.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    # MXNet lists initializers as graph inputs too; they are constants, not inputs.
    real_inputs = [i for i in graph.input if i.name not in inits]
    del graph.input[:]
    graph.input.extend(real_inputs)

    float_inits = {n for n, i in inits.items() if i.data_type == TensorProto.FLOAT}
    producers = {o: n for n in graph.node for o in n.output}
    region_tensors: set[str] = {i.name for i in real_inputs}  # float tensors that will be fp16-capable
    region: list = []
    for node in graph.node:  # topological order
        if node.op_type not in FP16_OPS:
            continue
        data_inputs = [x for x in node.input if x and x not in inits]
        if node.op_type in ("Reshape", "Pad"):
            data_inputs = data_inputs[:1]
        if data_inputs and all(x in region_tensors for x in data_inputs) and (
                node.op_type != "Reshape" or producers.get(node.input[0]) in region):
            region.append(node)
            region_tensors.update(node.output)
    region_ids = {id(n) for n in region}
    region_outputs = {o for n in region for o in n.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for x in node.input:
            consumers.setdefault(x, []).append(node)

    def fp16_name(name: str) -> str:
        return f"{name}__fp16"

    new_casts_in: dict[str, object] = {}
    for node in region:
        skip_positions = {1} if node.op_type in ("Reshape", "Pad") else set()
        for pos, x in enumerate(node.input):
            if not x or pos in skip_positions:
                continue
            if x in float_inits:
                users = consumers.get(x, [])
                if all(id(u) in region_ids for u in users):
                    init = inits[x]
                    half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name)
                    init.CopyFrom(half)
                continue
            if x in inits:
                continue
            if x in region_outputs:
                node.input[pos] = fp16_name(x)
            else:  # graph input or a float32 tensor from outside the region
                if x not in new_casts_in:
                    new_casts_in[x] = helper.make_node("Cast", [x], [fp16_name(x)], to=TensorProto.FLOAT16,
                                                       name=f"cast_fp16_{x}")
                node.input[pos] = fp16_name(x)
        for pos, o in enumerate(node.output):
            node.output[pos] = fp16_name(o)
    graph_outputs = {o.name for o in graph.output}
    casts_out = []
    for name in region_outputs:
        outside = [u for u in consumers.get(name, []) if id(u) not in region_ids]
        if outside or name in graph_outputs:
            casts_out.append(helper.make_node("Cast", [fp16_name(name)], [name], to=TensorProto.FLOAT,
                                              name=f"cast_fp32_{name}"))
    nodes = list(new_casts_in.values()) + list(graph.node) + casts_out
    del graph.node[:]
    graph.node.extend(_toposort(nodes))
    del graph.value_info[:]
    meta = {p.key: p.value for p in model.metadata_props}
    meta["precision"] = "fp16"
    set_metadata(model, meta)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return out


def _toposort(nodes: list) -> list:
    """Kahn's algorithm over tensor names (ONNX requires producers before consumers)."""
    produced_by = {o: i for i, n in enumerate(nodes) for o in n.output}
    deps = [{produced_by[x] for x in n.input if x in produced_by} for n in nodes]
    done: set[int] = set()
    order: list = []
    remaining = list(range(len(nodes)))
    while remaining:
        progress = [i for i in remaining if deps[i] <= done]
        if not progress:
            raise ValueError("cycle in ONNX graph")
        for i in progress:
            done.add(i)
            order.append(nodes[i])
        remaining = [i for i in remaining if i not in done]
    return order


def read_metadata(path: Path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}

"""Repairs and surgery on ONNX graphs exported from GluonCV by ``mxnet.onnx.export_model``.

Two repairs let ONNX Runtime apply ``ORT_ENABLE_ALL`` (extended fusions, constant folding):

* :func:`dedupe_node_names` -- the exporter leaves most node names empty. ORT's extended fusions
  (``GatherSliceToSplitFusion`` on the SSD graph) derive the fused node's name from the originals, so two
  fusions produce the same name and session creation fails with
  ``two nodes with same node name (/GatherSliceToSplitFusion/)``. Unique names fix that.
* :func:`strip_initializer_inputs` -- every weight is also listed as a graph input, which tells ORT
  that a caller may override it, so it must not be constant-folded. Weights are never fed, so drop them.

One cut for TensorRT: :func:`cut_before_nms` ends the graph at the tensor that enters MXNet's exported
``box_nms`` (``(B, N, 6)`` rows ``[class_id, score, x1, y1, x2, y2]``: boxes already decoded, scores already
thresholded per class), and stores the NMS constants in the model's ``metadata_props`` (key ``nms``) so
:mod:`edge_app.detectors.nms` can finish the job on the host.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import onnx
from onnx import helper, numpy_helper

from edge_app.detectors.nms import NmsParams

NMS_METADATA_KEY = "nms"


def dedupe_node_names(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` where every node has a unique, non-empty name.

    Existing unique names are kept; empty or repeated ones become ``<op_type>_<index>`` (with a numeric
    suffix if that is taken). Only names change, so the computation is identical.
    """
    repaired = onnx.ModelProto()
    repaired.CopyFrom(model)
    taken = {node.name for node in repaired.graph.node if node.name}
    seen: set[str] = set()
    for index, node in enumerate(repaired.graph.node):
        if node.name and node.name not in seen:
            seen.add(node.name)
            continue
        candidate, suffix = f"{node.op_type}_{index}", 0
        while candidate in taken or candidate in seen:
            suffix += 1
            candidate = f"{node.op_type}_{index}_{suffix}"
        node.name = candidate
        seen.add(candidate)
        taken.add(candidate)
    return repaired


def duplicate_node_names(model: onnx.ModelProto) -> list[str]:
    """Node names used more than once (the empty name counts), sorted."""
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.name] = counts.get(node.name, 0) + 1
    return sorted(name for name, n in counts.items() if n > 1)


def strip_initializer_inputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose graph inputs no longer list its initializers (weights)."""
    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    weights = {init.name for init in stripped.graph.initializer}
    keep = [inp for inp in stripped.graph.input if inp.name not in weights]
    del stripped.graph.input[:]
    stripped.graph.input.extend(keep)
    return stripped


def repair_for_ort(model: onnx.ModelProto) -> onnx.ModelProto:
    """Both repairs; the result runs under ``ORT_ENABLE_ALL`` (proved equal in tests/test_graph_tools.py)."""
    return strip_initializer_inputs(dedupe_node_names(model))


def feed_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs a caller must feed (initializers listed as inputs excluded)."""
    weights = {init.name for init in model.graph.initializer}
    return [inp for inp in model.graph.input if inp.name not in weights]


def read_metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {prop.key: prop.value for prop in model.metadata_props}


def set_metadata(model: onnx.ModelProto, values: dict[str, str]) -> None:
    """Set (add or replace) ``metadata_props`` entries in place."""
    current = read_metadata(model)
    current.update(values)
    del model.metadata_props[:]
    for key, value in current.items():
        model.metadata_props.add(key=key, value=value)


# --- NMS surgery -------------------------------------------------------------------------------------------


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in model.graph.node for out in node.output}


def _constant(model: onnx.ModelProto, name: str) -> list[float] | None:
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init).reshape(-1).tolist()
    for node in model.graph.node:
        if node.op_type == "Constant" and name in node.output:
            return numpy_helper.to_array(node.attribute[0].t).reshape(-1).tolist()
    return None


def find_nms_node(model: onnx.ModelProto) -> onnx.NodeProto:
    nodes = [node for node in model.graph.node if node.op_type == "NonMaxSuppression"]
    if len(nodes) != 1:
        raise ValueError(f"expected exactly one NonMaxSuppression node, found {len(nodes)}")
    return nodes[0]


def nms_input_tensor(model: onnx.ModelProto) -> str:
    """Name of the ``(B, N, 6)`` tensor MXNet's exported ``box_nms`` starts from.

    The exporter's pattern is ``X -> Reshape(-1, N, 6) -> Slice[2:6] -> NonMaxSuppression``; we walk it
    backwards and insist on each op type, so an unknown graph fails loudly instead of being mis-cut.
    """
    producers = _producers(model)
    nms = find_nms_node(model)
    boxes_slice = producers.get(nms.input[0])
    if boxes_slice is None or boxes_slice.op_type != "Slice":
        raise ValueError("NonMaxSuppression boxes do not come from a Slice: not a GluonCV box_nms export")
    reshape = producers.get(boxes_slice.input[0])
    if reshape is None or reshape.op_type != "Reshape":
        raise ValueError("box_nms input is not a Reshape: not a GluonCV box_nms export")
    return reshape.input[0]


def _post_nms_rows(model: onnx.ModelProto) -> int:
    """GluonCV's ``post_nms``: the ``slice_axis(axis=1, end=post_nms)`` after ``box_nms`` (-1 if none)."""
    producers = _producers(model)
    nms_out_names = _nms_tail_tensors(model)
    frontier = [out.name for out in model.graph.output]
    visited: set[str] = set()
    while frontier:
        name = frontier.pop()
        if name in visited or name in nms_out_names:
            continue
        visited.add(name)
        node = producers.get(name)
        if node is None:
            continue
        if node.op_type == "Slice" and len(node.input) >= 4 and node.input[0] in nms_out_names:
            axes = _constant(model, node.input[3])
            ends = _constant(model, node.input[2])
            if axes == [1] and ends:
                return int(ends[0])
        frontier.extend(node.input)
    return -1


def _nms_tail_tensors(model: onnx.ModelProto) -> set[str]:
    """The ``box_nms`` result: the tail's ``Reshape(gathered_rows, Shape(X))`` back to the input's shape.

    The tail is everything computed from the NonMaxSuppression output; its last step reshapes the
    gathered rows to ``Shape(X)`` of the box_nms input ``X``. GluonCV's ``slice_axis`` ops read that tensor.
    """
    nms = find_nms_node(model)
    raw = nms_input_tensor(model)
    shape_of_raw = {out for node in model.graph.node if node.op_type == "Shape" and node.input[0] == raw
                    for out in node.output}
    tail = set(nms.output)
    results: set[str] = set()
    for node in model.graph.node:  # exported graphs are topologically sorted
        if any(inp in tail for inp in node.input):
            tail.update(node.output)
            if node.op_type == "Reshape" and node.input[1] in shape_of_raw:
                results.update(node.output)
    if not results:
        raise ValueError("could not find the box_nms result Reshape after NonMaxSuppression")
    return results


def read_nms_params(model: onnx.ModelProto) -> NmsParams:
    """The constants of the exported ``box_nms`` (thresholds, topk) and GluonCV's ``post_nms``."""
    if NMS_METADATA_KEY in read_metadata(model):
        values = json.loads(read_metadata(model)[NMS_METADATA_KEY])
        return NmsParams(**values)
    nms = find_nms_node(model)
    topk = _constant(model, nms.input[2]) if len(nms.input) > 2 else None
    overlap = _constant(model, nms.input[3]) if len(nms.input) > 3 else None
    valid = _constant(model, nms.input[4]) if len(nms.input) > 4 else None
    for attr in nms.attribute:
        if attr.name == "center_point_box" and attr.i != 0:
            raise ValueError("NonMaxSuppression uses centre boxes; GluonCV exports corner boxes")
    top = int(topk[0]) if topk else 0
    return NmsParams(
        overlap_thresh=float(overlap[0]) if overlap else 0.0,
        valid_thresh=float(valid[0]) if valid else float("-inf"),
        topk=top if 0 < top < 2**31 - 1 else -1,
        post_nms=_post_nms_rows(model),
    )


def _needed_node_indexes(model: onnx.ModelProto, outputs: Iterable[str]) -> set[int]:
    """Indexes of the nodes needed to compute ``outputs`` (backward reachability)."""
    producer_index = {out: i for i, node in enumerate(model.graph.node) for out in node.output}
    needed: set[str] = set()
    frontier = list(outputs)
    keep: set[int] = set()
    while frontier:
        name = frontier.pop()
        if name in needed:
            continue
        needed.add(name)
        index = producer_index.get(name)
        if index is not None and index not in keep:
            keep.add(index)
            frontier.extend(i for i in model.graph.node[index].input if i)
    return keep


def _needed_nodes(model: onnx.ModelProto, outputs: Iterable[str]) -> list[onnx.NodeProto]:
    keep = _needed_node_indexes(model, outputs)
    return [node for i, node in enumerate(model.graph.node) if i in keep]


def cut_before_nms(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same network ending just before NMS: one output ``(B, N, 6)`` ``[id, score, x1, y1, x2, y2]``.

    Rows have decoded corner boxes in network-input pixels and per-class scores after GluonCV's score
    threshold (rows below it have ``id = -1``, ``score = 0``). The NMS constants go into ``metadata_props``
    (``nms``: JSON of :class:`NmsParams`), other metadata (class names, version ...) is kept.
    ``nms.batched_box_nms(cut_output, read_nms_params(cut))`` equals the full graph's outputs.
    """
    params = read_nms_params(model)
    raw = nms_input_tensor(model)
    nodes = _needed_nodes(model, [raw])
    used = {i for node in nodes for i in node.input}
    inits = [init for init in model.graph.initializer if init.name in used]
    init_names = {init.name for init in inits}
    inputs = [inp for inp in feed_inputs(model) if inp.name in used or inp.name not in init_names]
    output = helper.make_tensor_value_info(raw, onnx.TensorProto.FLOAT, ["batch", "anchors", 6])
    graph = helper.make_graph(nodes, f"{model.graph.name}_before_nms", inputs, [output], initializer=inits)
    cut = helper.make_model(graph, opset_imports=list(model.opset_import), producer_name="edge_app.graph_tools")
    cut.ir_version = model.ir_version
    set_metadata(cut, read_metadata(model))
    set_metadata(cut, {NMS_METADATA_KEY: json.dumps(params.__dict__)})
    return cut


def is_cut_before_nms(model: onnx.ModelProto) -> bool:
    return NMS_METADATA_KEY in read_metadata(model) and not any(
        node.op_type == "NonMaxSuppression" for node in model.graph.node)


def nms_tail(model: onnx.ModelProto) -> onnx.ModelProto:
    """The complement of :func:`cut_before_nms`: a graph from the NMS input ``(B, N, 6)`` to the model's
    outputs. Lets tests run the exporter's own NMS on synthetic rows and compare the host NMS with it."""
    raw = nms_input_tensor(model)
    keep = _needed_node_indexes(model, [o.name for o in model.graph.output]) - _needed_node_indexes(model, [raw])
    nodes = [node for i, node in enumerate(model.graph.node) if i in keep]
    used = {i for node in nodes for i in node.input}
    inits = [init for init in model.graph.initializer if init.name in used]
    raw_input = helper.make_tensor_value_info(raw, onnx.TensorProto.FLOAT, ["batch", "anchors", 6])
    graph = helper.make_graph(nodes, f"{model.graph.name}_nms_tail", [raw_input], list(model.graph.output),
                              initializer=inits)
    tail = helper.make_model(graph, opset_imports=list(model.opset_import), producer_name="edge_app.graph_tools")
    tail.ir_version = model.ir_version
    return tail

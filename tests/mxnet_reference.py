"""MXNet / GluonCV reference outputs for the detector parity tests, computed in a subprocess.

Why a subprocess: MXNet 1.9.1's MKLDNN (oneDNN) CPU path returns saturated scores (1.0) and infinite
boxes for the untrained SSD, while MXNet without MKLDNN and ONNX Runtime agree (finite boxes, scores
0.5). ``MXNET_MKLDNN_ENABLED=0`` must be set before mxnet is imported, which another test in the same
pytest process may already have done, hence a fresh interpreter.

Usage: ``python tests/mxnet_reference.py MODEL.onnx INPUTS.npz OUT.npz`` where INPUTS holds ``batch``
(a preprocessed (B, 3, h, w) tensor) and ``image_<i>`` (BGR uint8 frames). OUT gets, for the tensor:
``ids``, ``scores``, ``boxes`` (``net(x)``) and ``rows`` (the (B, N, 6) tensor entering box_nms); and per
frame ``ref_ids_<i>`` / ``ref_scores_<i>`` / ``ref_boxes_<i>`` from GluonCV's own val transform +
``net``, boxes scaled back to the frame by ``gluoncv.data.transforms.bbox.resize``.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

os.environ["MXNET_MKLDNN_ENABLED"] = "0"
os.environ["MXNET_STORAGE_FALLBACK_LOG_VERBOSE"] = "0"
warnings.filterwarnings("ignore")


def main(model_path: str, inputs_path: str, out_path: str) -> None:
    import mxnet as mx
    import numpy as np
    import onnx
    from gluoncv.data.transforms import bbox as tbbox
    from gluoncv.data.transforms.presets.ssd import SSDDefaultValTransform
    from gluoncv.data.transforms.presets.yolo import YOLO3DefaultValTransform

    from edge_app.detectors import graph_tools

    model = onnx.load(model_path)
    metadata = graph_tools.read_metadata(model)
    width, height = int(metadata["input_width"]), int(metadata["input_height"])
    raw_name = graph_tools.nms_input_tensor(model) + "_output"
    stem = str(Path(model_path).with_suffix(""))
    symbol = mx.sym.load(f"{stem}-symbol.json")
    internals = symbol.get_internals()
    net = mx.gluon.SymbolBlock(mx.sym.Group([symbol[0], symbol[1], symbol[2], internals[raw_name]]),
                               [mx.sym.var("data")])
    net.collect_params().load(f"{stem}-0000.params", ctx=mx.cpu(), ignore_extra=True)

    inputs = np.load(inputs_path)
    ids, scores, boxes, rows = (o.asnumpy() for o in net(mx.nd.array(inputs["batch"])))
    out = {"ids": ids, "scores": scores, "boxes": boxes, "rows": rows}

    family = metadata.get("architecture", "")
    transform = (YOLO3DefaultValTransform if family.startswith("yolo3") else SSDDefaultValTransform)(width, height)
    for key in sorted(k for k in inputs.files if k.startswith("image_")):
        index = key.split("_", 1)[1]
        bgr = inputs[key]
        frame_h, frame_w = bgr.shape[:2]
        tensor, _ = transform(mx.nd.array(bgr[:, :, ::-1].copy(), dtype="uint8"), np.zeros((1, 5), np.float32))
        r_ids, r_scores, r_boxes, _ = (o.asnumpy()[0] for o in net(tensor.expand_dims(0)))
        out[f"ref_ids_{index}"] = r_ids
        out[f"ref_scores_{index}"] = r_scores
        out[f"ref_boxes_{index}"] = tbbox.resize(r_boxes, (width, height), (frame_w, frame_h)).astype(np.float32)
        out[f"ref_tensor_{index}"] = tensor.asnumpy()
    np.savez(out_path, **out)
    print(json.dumps({"written": out_path, "keys": sorted(out)}))


if __name__ == "__main__":
    main(*sys.argv[1:4])

"""Export a GluonCV detector to ONNX (used by tests, benchmarks and demos without a trained model).

Uses the MXNet exporter the way that works for GluonCV SSD / YOLOv3 (dynamic batch dimension), then
writes the same ``metadata_props`` that training writes, so the file is self-describing:
``class_names`` (JSON list), ``input_width``, ``input_height``, ``architecture``, ``model_version``.
MXNet is imported inside the function: the runtime never needs it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from edge_app.fileio import atomic_write_bytes  # noqa: F401 - re-exported (trt_detector)

DEFAULT_INPUT_SIZES = {"ssd": (300, 300), "yolo3": (416, 416)}


def export_gluoncv_detector(model_name: str, out_path: str | Path, *, classes: Sequence[str] = ("tray",),
                            input_size: tuple[int, int] | None = None, seed: int = 0,
                            model_version: str | None = None, keep_mxnet_files: bool = False,
                            init: Literal["default", "he"] = "default") -> Path:
    """Build an *untrained* (randomly initialised, seeded) GluonCV net and export it to ONNX atomically.

    ``model_name`` is a GluonCV model-zoo name such as ``ssd_300_mobilenet0.25_custom`` or
    ``yolo3_mobilenet0.25_custom``; ``input_size`` is (width, height). With ``keep_mxnet_files`` the
    MXNet symbol/params (``<stem>-symbol.json``, ``<stem>-0000.params``) stay next to the ONNX file, so a
    test can run the very same weights in MXNet.

    ``init="default"`` is GluonCV's plain ``net.initialize()`` (uniform +-0.07): activations shrink layer
    after layer, so every anchor gets the same score (0.5 SSD, 0.25 YOLOv3) and boxes barely depend on
    the image. ``init="he"`` redraws every convolution weight from N(0, 2 / fan_in) (He et al. 2015), which
    keeps activations at unit scale: still untrained, but with spread scores and image-dependent boxes,
    so parity tests exercise real NMS decisions and real sensitivity to preprocessing.
    """
    import mxnet as mx
    import numpy as np
    import onnx
    from gluoncv import model_zoo
    from mxnet import onnx as mx_onnx

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    family = "yolo3" if model_name.startswith("yolo3") else "ssd"
    width, height = input_size or DEFAULT_INPUT_SIZES[family]
    mx.random.seed(seed)
    net = model_zoo.get_model(model_name, classes=list(classes), pretrained_base=False, transfer=None)
    net.initialize()  # default Uniform init; Xavier fails on the BatchNorm vectors
    net.hybridize()
    net(mx.nd.zeros((1, 3, height, width)))  # materialise shapes and the cached graph
    if init == "he":
        for param in net.collect_params().values():
            if param.name.endswith("weight") and len(param.shape) == 4:
                fan_in = int(np.prod(param.shape[1:]))
                param.set_data(mx.nd.random.normal(0.0, float(np.sqrt(2.0 / fan_in)), shape=param.shape))
    with tempfile.TemporaryDirectory(dir=out_path.parent) as tmp:
        prefix = str(Path(tmp) / out_path.stem)
        net.export(prefix)
        sym, params = f"{prefix}-symbol.json", f"{prefix}-0000.params"
        onnx_tmp = f"{prefix}.onnx"
        mx_onnx.export_model(sym, params, [(1, 3, height, width)], [np.float32], onnx_tmp,
                             dynamic=True, dynamic_input_shapes=[(None, 3, height, width)])
        model = onnx.load(onnx_tmp)
        metadata = {
            "class_names": json.dumps(list(classes)),
            "input_width": str(width),
            "input_height": str(height),
            "architecture": model_name,
            "model_version": model_version or f"untrained-{model_name}-{init}-seed{seed}",
        }
        for key, value in metadata.items():
            model.metadata_props.add(key=key, value=value)
        atomic_write_bytes(out_path, model.SerializeToString())
        if keep_mxnet_files:
            os.replace(sym, out_path.with_name(f"{out_path.stem}-symbol.json"))
            os.replace(params, out_path.with_name(f"{out_path.stem}-0000.params"))
    return out_path



"""Open and validate a detector ONNX file; settle what the model says about itself.

Precedence for class names and input size: ONNX ``metadata_props`` written by training
(``class_names`` JSON list, ``input_width``, ``input_height``) > fixed input dims in the graph > the
config's defaults. Whenever the model overrides the config it is logged, because a config that disagrees
with its model is usually a stale config. ``model_version`` and ``architecture`` are read when present.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edge_app.config import ModelConfig
from edge_app.errors import EdgeAppError

log = logging.getLogger(__name__)

OutputLayout = Literal["gluoncv", "before_nms"]


@dataclass(frozen=True)
class ModelSpec:
    """What a backend needs to know about one detector ONNX file."""

    path: Path
    sha256: str
    input_name: str
    input_size: tuple[int, int]
    """(width, height) of the network input."""
    class_names: tuple[str, ...]
    model_version: str
    architecture: str | None
    output_layout: OutputLayout
    """``gluoncv``: outputs (ids, scores, boxes) after NMS; ``before_nms``: one (B, N, 6) output."""
    output_names: tuple[str, ...]
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    """Normalisation (RGB order) from the ``preprocess`` metadata when present, else ImageNet's (GluonCV's)."""


def load_onnx(path: Path):  # -> onnx.ModelProto (onnx imported lazily)
    """Read an ONNX file, turning every failure into an :class:`EdgeAppError` naming the file."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise EdgeAppError(f"{path}: model.path: file not found (expected an ONNX detector exported from GluonCV)")
    try:
        model = onnx.load_from_string(path.read_bytes())
    except Exception as exc:  # protobuf DecodeError and friends
        raise EdgeAppError(f"{path}: model.path: not an ONNX model ({type(exc).__name__})") from None
    if not model.graph.node:
        raise EdgeAppError(f"{path}: model.path: not an ONNX model (no graph nodes)")
    return model


def _dims(value_info) -> list[int | str]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


def inspect_model(model, path: Path, model_cfg: ModelConfig | None = None) -> ModelSpec:
    """Validate inputs/outputs of a GluonCV detector graph and resolve names, size and version."""
    from edge_app.detectors import graph_tools

    path = Path(path)
    inputs = graph_tools.feed_inputs(model)
    in_dims = [_dims(i) for i in inputs]
    if len(inputs) != 1 or len(in_dims[0]) != 4 or in_dims[0][1] not in (3, "?"):
        got = ", ".join(f"{i.name}{tuple(d)}" for i, d in zip(inputs, in_dims, strict=True)) or "none"
        raise EdgeAppError(f"{path}: inputs: expected one image input of shape (batch, 3, height, width), got {got}")
    outputs = list(model.graph.output)
    ranks = [len(_dims(o)) for o in outputs]
    metadata = graph_tools.read_metadata(model)
    if len(outputs) == 3 and all(r in (0, 3) for r in ranks):
        layout: OutputLayout = "gluoncv"
    elif len(outputs) == 1 and ranks[0] in (0, 3) and graph_tools.NMS_METADATA_KEY in metadata:
        layout = "before_nms"
    else:
        got = ", ".join(f"{o.name}{tuple(_dims(o))}" for o in outputs) or "none"
        raise EdgeAppError(
            f"{path}: outputs: expected GluonCV detector outputs (class ids (B,K,1), scores (B,K,1), "
            f"boxes (B,K,4)) or a graph cut before NMS, got {got}")

    cfg_size = tuple(model_cfg.input_size) if model_cfg else None
    cfg_names = tuple(model_cfg.class_names) if model_cfg else ()
    graph_h, graph_w = in_dims[0][2], in_dims[0][3]
    graph_size = (graph_w, graph_h) if isinstance(graph_w, int) and isinstance(graph_h, int) and graph_w else None
    meta_size = None
    if "input_width" in metadata or "input_height" in metadata:
        try:
            meta_size = (int(metadata["input_width"]), int(metadata["input_height"]))
        except (KeyError, ValueError):
            raise EdgeAppError(f"{path}: metadata_props: input_width/input_height: expected two integers, got "
                               f"{metadata.get('input_width')!r}/{metadata.get('input_height')!r}") from None
    if meta_size and graph_size and meta_size != graph_size:
        raise EdgeAppError(f"{path}: metadata_props: input_width/input_height {meta_size} contradict the graph's "
                           f"fixed input {graph_size}")
    input_size = meta_size or graph_size or cfg_size
    if input_size is None:
        raise EdgeAppError(f"{path}: inputs: the graph has no fixed height/width and no metadata; set model.input_size")
    if cfg_size and cfg_size != input_size:
        log.info("%s: the model's input size %s overrides model.input_size %s", path, input_size, cfg_size)

    class_names = cfg_names
    if "class_names" in metadata:
        try:
            names = json.loads(metadata["class_names"])
        except json.JSONDecodeError:
            names = None
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
            raise EdgeAppError(f"{path}: metadata_props: class_names: expected a JSON list of strings, got "
                               f"{metadata['class_names']!r:.80}")
        if cfg_names and tuple(names) != cfg_names:
            log.info("%s: the model's class names %s override model.class_names %s", path, names, list(cfg_names))
        class_names = tuple(names)

    mean, std = _check_preprocess_metadata(metadata.get("preprocess"), path)
    sha256 = hashlib.sha256(model.SerializeToString()).hexdigest()
    version = metadata.get("model_version") or f"sha256:{sha256[:12]}"
    return ModelSpec(path=path, sha256=sha256, input_name=inputs[0].name, input_size=(int(input_size[0]),
                     int(input_size[1])), class_names=class_names, model_version=version,
                     architecture=metadata.get("architecture"), output_layout=layout,
                     output_names=tuple(o.name for o in outputs), mean=mean, std=std)


def _check_preprocess_metadata(text: str | None, path: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Training records its preprocessing (``preprocess`` JSON); refuse a model that expects another one.

    We implement GluonCV's: RGB, plain stretch to the input size, scale 1/255, mean/std, NCHW. Mean and
    std are taken from the metadata; anything else that differs is an error, not a silent accuracy loss.
    """
    default = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    if not text:
        return default
    try:
        info = json.loads(text)
        expected = {"color": "RGB", "resize": "stretch", "layout": "NCHW"}
        wrong = {k: info[k] for k, v in expected.items() if k in info and str(info[k]) != v}
        if "scale" in info and abs(float(info["scale"]) - 1 / 255) > 1e-9:
            wrong["scale"] = info["scale"]
        mean = tuple(float(v) for v in info.get("mean", default[0]))
        std = tuple(float(v) for v in info.get("std", default[1]))
    except (TypeError, ValueError, AttributeError):
        raise EdgeAppError(f"{path}: metadata_props: preprocess: expected a JSON object, got {text!r:.80}") from None
    if wrong or len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise EdgeAppError(f"{path}: metadata_props: preprocess: expected RGB, stretch resize, scale 1/255, NCHW "
                           f"and 3 means / 3 positive stds, got {text!r:.160}")
    return mean, std

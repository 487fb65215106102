"""``edge-app panorama run-local``: run the code node's entry module on a laptop, wired from graph.json.

The graph decides everything the appliance would decide: which parameter values reach the code node's
inputs (graph value, or ``--param name=value`` as a deployment override would), which camera nodes feed
``video_in`` (``--camera name=video.mp4``, several cameras = what an override replacing ``camera_node``
does), which node ``self.call`` reaches (the graph's ``ml_model`` nodes; here ONNX Runtime runs the exported
detector in place of the compiled model: same 3 GluonCV outputs) and where ``video_out`` goes (the HDMI sink:
annotated MP4 files, one per camera, with the rects and labels the node added).

The entry module (``packages/<account>-tray_counter_code-<v>/src/app.py``) is run with ``runpy`` exactly as
``python3 /panorama/app.py`` runs on the device, with ``edge_app/panorama/local_sdk`` first on ``sys.path``.
"""

from __future__ import annotations

import logging
import os
import runpy
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_app.errors import EdgeAppError
from edge_app.panorama import manifests
from edge_app.panorama.project import CAMERA_INTERFACE, HDMI_INTERFACE, VALUE_TYPES, load_project

LOCAL_SDK_DIR = Path(__file__).resolve().parent / "local_sdk"
log = logging.getLogger(__name__)


def parse_value(text: str, kind: str, name: str) -> Any:
    """A ``--param`` value typed like the parameter node's interface."""
    try:
        if kind == "float32":
            return float(text)
        if kind == "int32":
            return int(text)
        if kind == "boolean":
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
    except ValueError:
        raise EdgeAppError(f"--param {name}: expected a {kind} value, got {text!r}") from None
    return text


def split_assignment(text: str, option: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise EdgeAppError(f"{option}: expected NAME=VALUE, got {text!r}")
    return name.strip(), value


@dataclass
class HdmiStats:
    frames: int = 0
    rects: int = 0
    labels: int = 0
    last_labels: list[str] = field(default_factory=list)


class OnnxModelNode:
    """The model node: the exported GluonCV detector in ONNX Runtime (basic graph optimisations)."""

    def __init__(self, path: Path, input_size: int, node_name: str) -> None:
        import onnxruntime as ort

        from edge_app.detectors.model_file import inspect_model, load_onnx

        spec = inspect_model(load_onnx(path), path)
        if spec.output_layout != "gluoncv":
            raise EdgeAppError(f"{path}: --model: expected a GluonCV export with NMS inside (3 outputs)")
        if spec.input_size != (input_size, input_size):
            raise EdgeAppError(f"{path}: --model: its input is {spec.input_size[0]}x{spec.input_size[1]} but the graph "
                               f"parameter model_input_size is {input_size} (pass --param "
                               f"model_input_size={spec.input_size[0]} to run this model)")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.intra_op_num_threads = max(1, (os.cpu_count() or 2) - 1)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = spec.input_name
        self.shape = (1, 3, input_size, input_size)
        self.node_name = node_name
        self.model_version = spec.model_version

    def __call__(self, inputs: dict) -> tuple[np.ndarray, ...]:
        if set(inputs) != {"data"}:
            raise ValueError(f"{self.node_name}: the model descriptor's only input is 'data', got {sorted(inputs)}")
        data = np.asarray(inputs["data"], np.float32)
        if data.shape != self.shape:
            raise ValueError(f"{self.node_name}: input 'data' must have shape {list(self.shape)}, "
                             f"got {list(data.shape)}")
        return tuple(self.session.run(None, {self.input_name: data}))


class Camera:
    """A video file as a camera: frames with media-time timestamps ``(seconds, microseconds)``."""

    def __init__(self, stream_id: str, path: Path) -> None:
        import cv2

        if not path.is_file():
            raise EdgeAppError(f"--camera {stream_id}: video file {path} not found")
        self.stream_id = stream_id
        self.path = path
        self.capture = cv2.VideoCapture(str(path))
        if not self.capture.isOpened():
            raise EdgeAppError(f"--camera {stream_id}: OpenCV cannot open {path}")
        self.fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0) or 15.0
        self.index = 0
        self.ended = False

    def read(self) -> Any:
        if self.ended:
            return None
        ok, image = self.capture.read()
        if not ok:
            self.ended = True
            self.capture.release()
            return None
        t = self.index / self.fps
        self.index += 1
        return image, (int(t), int(round((t - int(t)) * 1e6)))

    def close(self) -> None:
        self.capture.release()


class LocalRuntime:
    """Plays the appliance for one code node (see module docstring)."""

    def __init__(self, *, parameters: dict[str, Any], video_port: str, cameras: list[Camera],
                 models: dict[str, OnnxModelNode], hdmi_dir: Path | None, max_frames: int | None) -> None:
        self.parameters = parameters
        self.video_port = video_port
        self.cameras = cameras
        self.models = models
        self.hdmi_dir = hdmi_dir
        self.max_frames = max_frames
        self.frames_served = 0
        self.ended = False
        self.nodes: list[Any] = []
        self.hdmi: dict[str, HdmiStats] = {}
        self._writers: dict[str, Any] = {}
        self._sdk: Any = None

    def input_ports(self) -> dict[str, Any]:
        sdk = self._sdk
        ports = {name: sdk._Port(name, getter=(lambda v=value: v)) for name, value in self.parameters.items()}
        ports[self.video_port] = sdk._Port(self.video_port, getter=self.next_frames)
        return ports

    def output_ports(self) -> dict[str, Any]:
        return {"video_out": self._sdk._Port("video_out", putter=self.show)}

    def next_frames(self) -> list[Any]:
        if self.max_frames is not None and self.frames_served >= self.max_frames:
            self.ended = True
            return []
        streams = []
        for camera in self.cameras:
            frame = camera.read()
            if frame is not None:
                image, stamp = frame
                streams.append(self._sdk.media(image, camera.stream_id, str(camera.path), stamp))
        if not streams:
            self.ended = True
        else:
            self.frames_served += 1
        return streams

    def call_model(self, node_name: str, inputs: dict) -> tuple[np.ndarray, ...]:
        if node_name not in self.models:
            raise ValueError(f"call: the graph has no model node {node_name!r} (model nodes: {', '.join(self.models)})")
        return self.models[node_name](inputs)

    def show(self, streams: Sequence[Any]) -> None:
        """The HDMI sink: draw each stream's rects and labels; write them to ``<hdmi_dir>/<stream>.mp4``."""
        import cv2

        for stream in streams:
            stats = self.hdmi.setdefault(stream.stream_id, HdmiStats())
            stats.frames += 1
            stats.rects += len(stream.rects)
            stats.labels += len(stream.labels)
            stats.last_labels = [text for text, _, _ in stream.labels]
            if self.hdmi_dir is None:
                continue
            image = stream.image.copy()
            height, width = image.shape[:2]
            for x1, y1, x2, y2 in stream.rects:
                cv2.rectangle(image, (int(x1 * width), int(y1 * height)), (int(x2 * width), int(y2 * height)),
                              (0, 255, 0), 2)
            for text, x, y in stream.labels:
                cv2.putText(image, text, (int(x * width), int(y * height) + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                            (255, 255, 255), 1, cv2.LINE_AA)
            writer = self._writers.get(stream.stream_id)
            if writer is None:
                self.hdmi_dir.mkdir(parents=True, exist_ok=True)
                camera = next(c for c in self.cameras if c.stream_id == stream.stream_id)
                writer = cv2.VideoWriter(str(self.hdmi_dir / f"{stream.stream_id}.mp4"),
                                         cv2.VideoWriter_fourcc(*"mp4v"), camera.fps, (width, height))
                self._writers[stream.stream_id] = writer
            writer.write(image)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.release()
        for camera in self.cameras:
            camera.close()


@dataclass
class LocalRunResult:
    streams: dict[str, dict]
    hdmi: dict[str, HdmiStats]
    parameters: dict[str, Any]
    model_version: str


def _graph_wiring(graph: dict, code_node: str) -> tuple[dict[str, tuple[str, Any]], str, list[str]]:
    """``({input: (type, graph value)}, media input port, camera node names)`` of the code node."""
    nodes = {n["name"]: n for n in graph["nodeGraph"]["nodes"]}
    params: dict[str, tuple[str, Any]] = {}
    media_port, cameras = "", []
    for edge in graph["nodeGraph"].get("edges", []):
        node, _, port = edge["consumer"].partition(".")
        if node != code_node:
            continue
        producer = nodes[edge["producer"].partition(".")[0]]
        if producer["interface"] in VALUE_TYPES:
            params[port] = (producer["interface"], producer.get("value"))
        elif producer["interface"] == CAMERA_INTERFACE:
            media_port = port
            cameras.append(producer["name"])
    return params, media_port, cameras


def run_local(root: Path, graph: Path | None = None, *, cameras: Sequence[str] = (), params: Sequence[str] = (),
              model: Path | None = None, max_frames: int | None = None, out_dir: Path | None = None,
              work_dir: Path | None = None) -> LocalRunResult:
    """Run the code node of ``graph`` (default: panorama.json's) locally; see the module docstring."""
    project = load_project(root)
    graph_path = graph or project.graph_path
    graph_doc = manifests.load(graph_path, "nodeGraph", str(graph_path)) if graph else project.graph
    if graph is not None:
        from edge_app.panorama.project import check_graph

        check_graph(graph_doc, project.interfaces(), str(graph_path))
    code_node = project.app["code_node"]
    wiring, media_port, camera_nodes = _graph_wiring(graph_doc, code_node)
    if not media_port:
        raise EdgeAppError(f"{graph_path}: no camera node feeds {code_node}")
    values = {name: value for name, (_, value) in wiring.items()}
    for item in params:
        name, text = split_assignment(item, "--param")
        if name not in wiring:
            raise EdgeAppError(f"--param {name}: {code_node} has no parameter input {name!r} "
                               f"(parameters: {', '.join(sorted(wiring))})")
        values[name] = parse_value(text, wiring[name][0], name)
    camera_specs = [split_assignment(c, "--camera") for c in cameras]
    if not camera_specs:
        default = root / "sim" / "assets" / "demo_line1.mp4"
        camera_specs = [(camera_nodes[0], str(default))]
    names = [n for n, _ in camera_specs]
    if len(set(names)) != len(names):
        raise EdgeAppError(f"--camera: camera names must be unique, got {', '.join(names)}")
    model_nodes = [n["name"] for n in graph_doc["nodeGraph"]["nodes"]
                   if project.interfaces().get(n["interface"]) is not None
                   and project.interfaces()[n["interface"]].category == "ml_model"]
    if model is None:
        model_spec = next(p for p in project.packages.values() if p.kind == "model").spec["model"]
        model = root / model_spec.get("onnx", "models/tray_detector.onnx")
        if not model.is_file():
            raise EdgeAppError(f"{model}: --model: not found; train the detector (make model) or pass --model "
                               f"(any GluonCV SSD exported to ONNX, e.g. edge_app.detectors.export)")
    size = int(values.get(project.app["model_input_parameter"], 300))
    onnx_nodes = {name: OnnxModelNode(Path(model), size, name) for name in model_nodes}
    hdmi_nodes = [n for n in graph_doc["nodeGraph"]["nodes"] if n["interface"] == HDMI_INTERFACE]
    hdmi_dir = (out_dir / "hdmi") if (out_dir is not None and hdmi_nodes) else None
    work = work_dir or (out_dir or Path("out/panorama-local"))
    runtime = LocalRuntime(parameters=values, video_port=media_port,
                           cameras=[Camera(n, Path(p)) for n, p in camera_specs], models=onnx_nodes,
                           hdmi_dir=hdmi_dir, max_frames=max_frames)
    entry = _entry_path(project)
    try:
        app = _run_entry(runtime, entry, work)
    finally:
        runtime.close()
    summary = app.counting.summary() if app is not None else {}
    return LocalRunResult(streams=summary, hdmi=runtime.hdmi, parameters=values,
                          model_version=next(iter(onnx_nodes.values())).model_version if onnx_nodes else "")


def _entry_path(project: Any) -> Path:
    code = next(p for p in project.packages.values() if p.kind == "code")
    return code.source / code.spec["entry_source"]


def _run_entry(runtime: LocalRuntime, entry: Path, work: Path) -> Any:
    """``python3 app.py`` with the local SDK: fresh imports, the appliance's folders under ``work``."""
    saved_env = {k: os.environ.get(k) for k in ("PANORAMA_LOGS_DIR", "PANORAMA_STORAGE_DIR")}
    os.environ["PANORAMA_LOGS_DIR"] = str(work / "logs")
    os.environ["PANORAMA_STORAGE_DIR"] = str(work / "storage")
    sys.path.insert(0, str(LOCAL_SDK_DIR))
    fresh = ("panoramasdk", "edge_app.panorama.node")
    for name in fresh:
        sys.modules.pop(name, None)
    try:
        import panoramasdk

        runtime._sdk = panoramasdk
        panoramasdk._install(runtime)
        runpy.run_path(str(entry), run_name="__main__")
        return runtime.nodes[-1] if runtime.nodes else None
    finally:
        sys.path.remove(str(LOCAL_SDK_DIR))
        for name in fresh:
            sys.modules.pop(name, None)
        root_logger = logging.getLogger()
        for handler in list(root_logger.handlers):
            if getattr(handler, "_edge_app_panorama", False):
                root_logger.removeHandler(handler)
                handler.close()
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

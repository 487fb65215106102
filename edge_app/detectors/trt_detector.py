"""TensorRT FP16 backend (Jetson / CUDA machines), with pycuda for memory and streams.

TensorRT cannot build the ONNX ``NonMaxSuppression`` + scatter/gather tail that MXNet exports for
``box_nms``, so the engine is built from the graph cut just before it
(:func:`graph_tools.cut_before_nms`; output ``(B, N, 6)`` decoded boxes and scores) and the NMS runs on the
host (:mod:`edge_app.detectors.nms`), which tests prove equal to the exported NMS on ONNX Runtime.

Engine: explicit batch, one optimisation profile for batch ``1..max_batch`` (optimum at ``max_batch``,
the size dynamic batching fills under load), FP16 when the GPU supports it, a workspace limit. Building
takes minutes on a Jetson, so the serialized engine is cached on disk, keyed by everything that makes an
engine invalid: the ONNX file's sha256, the TensorRT version, the GPU name, the max batch, the precision
and the graph-surgery version (:class:`EngineKey`).

Execution: each thread that calls :meth:`TrtDetector.detect` (one inference worker per device in the
pipeline) gets its own execution context, CUDA stream and pinned host / device buffers sized for
``max_batch``; copies are async on that stream. TensorRT >= 8.5 uses the tensor-name API
(``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``); older versions the bindings API
(``set_binding_shape``, ``execute_async_v2``).

Nothing here imports ``tensorrt`` or ``pycuda`` at module level: the module imports on any machine and
choosing the backend without them raises a one-line :class:`EdgeAppError`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_app.config import ModelConfig
from edge_app.detections import Detections
from edge_app.detectors.decode import decode_batch, outputs_to_rows
from edge_app.detectors.export import atomic_write_bytes
from edge_app.detectors.model_file import ModelSpec, inspect_model, load_onnx
from edge_app.detectors.nms import NmsParams
from edge_app.detectors.preprocess import PerThreadPreprocessing
from edge_app.errors import EdgeAppError

log = logging.getLogger(__name__)

GRAPH_SURGERY_VERSION = "cut-before-nms-v1"
"""Bump when the ONNX preparation changes, so cached engines built from the old graph are not reused."""

DEFAULT_WORKSPACE_MB = 1024


def require_tensorrt() -> None:
    """Raise a one-line :class:`EdgeAppError` unless ``tensorrt`` and ``pycuda`` import."""
    missing = []
    for module in ("tensorrt", "pycuda.driver"):
        try:
            __import__(module)
        except Exception as exc:  # ImportError, or pycuda failing to find a CUDA driver
            missing.append(f"{module} ({type(exc).__name__}: {exc})")
    if missing:
        raise EdgeAppError(
            "model.backend: 'tensorrt' needs the tensorrt and pycuda Python packages and a CUDA GPU "
            f"(pip install -e '.[tensorrt]' on a Jetson/GPU machine); not importable here: {'; '.join(missing)}. "
            "Use backend: onnxruntime on this machine")


# --- pure helpers (unit-tested without a GPU) --------------------------------------------------------------


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialized TensorRT engine depends on; its :meth:`filename` is the cache file name."""

    onnx_sha256: str
    trt_version: str
    gpu_name: str
    max_batch: int
    precision: str = "fp16"
    graph_version: str = GRAPH_SURGERY_VERSION

    def filename(self) -> str:
        gpu = re.sub(r"[^A-Za-z0-9]+", "-", self.gpu_name).strip("-").lower() or "gpu"
        digest = hashlib.sha256(repr(self).encode()).hexdigest()[:12]
        return (f"{self.onnx_sha256[:16]}-trt{self.trt_version}-{gpu}-b{self.max_batch}-{self.precision}-"
                f"{digest}.engine")


def engine_cache_path(cache_dir: Path, key: EngineKey) -> Path:
    return Path(cache_dir) / key.filename()


def default_cache_dir(model_path: Path) -> Path:
    """Engines live next to the model (``models/.trt-engines/``): same lifetime and permissions."""
    return Path(model_path).parent / ".trt-engines"


def profile_shapes(chw: tuple[int, int, int], max_batch: int) -> tuple[tuple[int, ...], ...]:
    """(min, opt, max) input shapes of the one optimisation profile: batch 1..max_batch, optimum max."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    return (1, *chw), (max_batch, *chw), (max_batch, *chw)


@dataclass(frozen=True)
class TensorSpec:
    """One engine I/O tensor as TensorRT reports it (``-1`` for the dynamic batch dimension)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    is_input: bool


@dataclass(frozen=True)
class BufferSpec:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    is_input: bool

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


def plan_buffers(tensors: Sequence[TensorSpec], batch: int) -> list[BufferSpec]:
    """Concrete host/device buffer shapes for ``batch`` images: only dim 0 may be dynamic."""
    plan = []
    for tensor in tensors:
        if not tensor.shape:
            raise ValueError(f"tensor {tensor.name!r} has no shape")
        rest = tensor.shape[1:]
        if any(d < 0 for d in rest):
            raise ValueError(f"tensor {tensor.name!r} has a dynamic non-batch dimension {tensor.shape}; "
                             "only the batch dimension may be dynamic")
        if tensor.shape[0] >= 0 and tensor.shape[0] != batch and tensor.shape[0] != 1:
            raise ValueError(f"tensor {tensor.name!r} has a fixed batch {tensor.shape[0]}, cannot hold {batch}")
        plan.append(BufferSpec(tensor.name, (batch, *rest), np.dtype(tensor.dtype), tensor.is_input))
    return plan


TENSORRT_MAX_OPSET = 17
"""Highest ONNX opset the TensorRT 8.5/8.6 parser (JetPack 5) accepts; TensorRT 10 reads 9..20."""

# Restrictions from onnx-tensorrt's operator support matrix (docs/operators.md, TensorRT 8.4-8.6) that the
# MXNet exporter's graphs can run into. Checked statically, because this machine has no TensorRT.
_UNSUPPORTED_OPS = {"NonZero", "Mod", "Unique", "RoiAlign", "Compress", "OneHot", "Reciprocal", "IsInf"}
_NEEDS_CONSTANT_INPUT = {"Slice": (3, "axes"), "Squeeze": (1, "axes"), "Unsqueeze": (1, "axes"),
                         "TopK": (1, "K"), "Conv": (1, "weights W"),
                         "NonMaxSuppression": (2, "max_output_boxes_per_class")}


def tensorrt_static_issues(model) -> list[str]:  # model: onnx.ModelProto
    """Known TensorRT ONNX-parser restrictions this graph violates (empty list: none found).

    Not a substitute for building the engine on the device; it catches, without a GPU, the problems the
    exported GluonCV graphs are known for (the NMS tail: ``NonMaxSuppression`` is experimental in
    TensorRT 8.x and the tail's ``TopK`` takes K from a runtime shape) and a too-new opset. Not checked,
    unverified risks of the cut graphs: ``ConstantOfShape`` producing INT64 (the 8.x matrix lists FP32 only;
    the parser casts INT64 down to INT32 elsewhere) and ``Range`` with a runtime INT64 limit (YOLOv3's
    ``repeat``).
    """
    issues = []
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset > TENSORRT_MAX_OPSET:
        issues.append(f"opset {opset} > {TENSORRT_MAX_OPSET} (TensorRT 8.5/8.6 parser limit)")
    constants = {init.name for init in model.graph.initializer}
    constants |= {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    for index, node in enumerate(model.graph.node):
        where = f"node {index} ({node.op_type} {node.name!r})"
        if node.op_type in _UNSUPPORTED_OPS:
            issues.append(f"{where}: operator not supported by TensorRT")
        if node.op_type == "NonMaxSuppression":
            issues.append(f"{where}: experimental in TensorRT 8.x (fixed-size padded output)")
        rule = _NEEDS_CONSTANT_INPUT.get(node.op_type)
        if rule and len(node.input) > rule[0] and node.input[rule[0]] and node.input[rule[0]] not in constants:
            issues.append(f"{where}: {rule[1]} must be a constant initializer")
    return issues


def set_opset(model, version: int):  # onnx.ModelProto -> onnx.ModelProto
    """A copy declaring default-domain opset ``version``.

    Safe for MXNet exports: the exporter writes every node with its opset-13 translations and merely
    stamps the newest opset onnx knows (19 with onnx 1.14); between 13 and 19 the ops used here only gained
    types/optional inputs. Tests run the re-stamped graph in ONNX Runtime and compare.
    """
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for entry in copy.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = min(entry.version, version)
    return copy


def prepare_onnx_for_tensorrt(model):  # onnx.ModelProto -> onnx.ModelProto
    """Cut before NMS (if not cut yet), unique node names, weights out of the graph inputs, opset <= 17."""
    from edge_app.detectors import graph_tools

    if not graph_tools.is_cut_before_nms(model):
        model = graph_tools.cut_before_nms(model)
    return set_opset(graph_tools.repair_for_ort(model), TENSORRT_MAX_OPSET)


# --- TensorRT / pycuda (needs a GPU) -----------------------------------------------------------------------


def build_serialized_engine(trt, onnx_bytes: bytes, input_name: str, chw: tuple[int, int, int], max_batch: int,
                            workspace_mb: int = DEFAULT_WORKSPACE_MB, fp16: bool = True) -> bytes:
    """Parse the ONNX graph and build a serialized engine with the TensorRT Python API (``trt`` module)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EdgeAppError(f"TensorRT cannot parse the detector graph: {errors}")
    config = builder.create_builder_config()
    workspace = int(workspace_mb) << 20
    if hasattr(config, "set_memory_pool_limit"):  # TensorRT >= 8.4
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    else:
        config.max_workspace_size = workspace
    if fp16 and builder.platform_has_fast_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    elif fp16:
        log.warning("TensorRT: this GPU has no fast FP16; building an FP32 engine")
    profile = builder.create_optimization_profile()
    minimum, optimum, maximum = profile_shapes(chw, max_batch)
    profile.set_shape(input_name, minimum, optimum, maximum)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EdgeAppError("TensorRT failed to build an engine for the detector graph (see the TensorRT log above)")
    return bytes(serialized)


def engine_tensor_specs(trt, engine) -> list[TensorSpec]:
    """I/O tensors of a deserialized engine, tensor-name API (>= 8.5) or bindings API (older)."""
    specs = []
    if hasattr(engine, "num_io_tensors"):
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            specs.append(TensorSpec(name, tuple(engine.get_tensor_shape(name)),
                                    np.dtype(trt.nptype(engine.get_tensor_dtype(name))),
                                    engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT))
    else:
        for i in range(engine.num_bindings):
            specs.append(TensorSpec(engine.get_binding_name(i), tuple(engine.get_binding_shape(i)),
                                    np.dtype(trt.nptype(engine.get_binding_dtype(i))), engine.binding_is_input(i)))
    return specs


class _CudaWorker:
    """Per-thread execution context + CUDA stream + pinned host / device buffers for ``max_batch``."""

    def __init__(self, trt, cuda, engine, tensors: Sequence[TensorSpec], max_batch: int) -> None:
        self.trt, self.cuda = trt, cuda
        self.context = engine.create_execution_context()
        self.stream = cuda.Stream()
        self.plan = plan_buffers(tensors, max_batch)
        self.host = {b.name: cuda.pagelocked_empty(b.shape, b.dtype) for b in self.plan}
        self.device = {b.name: cuda.mem_alloc(b.nbytes) for b in self.plan}
        self.names_v3 = hasattr(self.context, "execute_async_v3")
        if not self.names_v3 and hasattr(self.context, "set_optimization_profile_async"):
            self.context.set_optimization_profile_async(0, self.stream.handle)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        cuda, n = self.cuda, len(batch)
        inputs = [b for b in self.plan if b.is_input]
        outputs = [b for b in self.plan if not b.is_input]
        for buffer in inputs:
            host = self.host[buffer.name]
            np.copyto(host[:n], batch)
            cuda.memcpy_htod_async(self.device[buffer.name], host[:n], self.stream)
            shape = (n, *buffer.shape[1:])
            if self.names_v3:
                self.context.set_input_shape(buffer.name, shape)
            else:
                self.context.set_binding_shape(self.plan.index(buffer), shape)
        if self.names_v3:
            for buffer in self.plan:
                self.context.set_tensor_address(buffer.name, int(self.device[buffer.name]))
            ok = self.context.execute_async_v3(stream_handle=self.stream.handle)
        else:
            bindings = [int(self.device[b.name]) for b in self.plan]
            ok = self.context.execute_async_v2(bindings=bindings, stream_handle=self.stream.handle)
        if not ok:
            raise RuntimeError("TensorRT execution failed")
        result = {}
        for buffer in outputs:
            host = self.host[buffer.name][:n]  # batch-major and contiguous: the first n rows are one block
            cuda.memcpy_dtoh_async(host, self.device[buffer.name], self.stream)
            result[buffer.name] = host
        self.stream.synchronize()
        return {name: array.copy() for name, array in result.items()}


class TrtEngineRunner:
    """Loads (or builds and caches) the engine; ``__call__(batch) -> (B, N, 6)`` raw pre-NMS rows."""

    def __init__(self, prepared_onnx: bytes, spec: ModelSpec, max_batch: int, cache_dir: Path,
                 workspace_mb: int = DEFAULT_WORKSPACE_MB, device_id: int = 0) -> None:
        require_tensorrt()
        import pycuda.driver as cuda
        import tensorrt as trt

        self.trt, self.cuda = trt, cuda
        cuda.init()
        device = cuda.Device(device_id)
        self.cuda_context = device.retain_primary_context()
        self.key = EngineKey(spec.sha256, trt.__version__, device.name(), max_batch)
        self.engine_path = engine_cache_path(cache_dir, self.key)
        chw = (3, spec.input_size[1], spec.input_size[0])
        if self.engine_path.is_file():
            log.info("TensorRT: loading cached engine %s", self.engine_path)
            serialized = self.engine_path.read_bytes()
        else:
            log.info("TensorRT: building FP16 engine (batch 1..%d) for %s; cached as %s", max_batch, spec.path,
                     self.engine_path)
            self.cuda_context.push()
            try:
                serialized = build_serialized_engine(trt, prepared_onnx, spec.input_name, chw, max_batch,
                                                     workspace_mb)
            finally:
                self.cuda_context.pop()
            self.engine_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.engine_path, serialized)
        self.cuda_context.push()
        try:
            self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            self.engine = self.runtime.deserialize_cuda_engine(serialized)
        finally:
            self.cuda_context.pop()
        if self.engine is None:
            raise EdgeAppError(f"{self.engine_path}: cannot deserialize the cached TensorRT engine; delete it")
        self.tensors = engine_tensor_specs(trt, self.engine)
        self.max_batch = max_batch
        self._local = threading.local()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.cuda_context.push()
        try:
            worker = getattr(self._local, "worker", None)
            if worker is None:
                worker = self._local.worker = _CudaWorker(self.trt, self.cuda, self.engine, self.tensors,
                                                          self.max_batch)
            outputs = worker.run(batch)
        finally:
            self.cuda_context.pop()
        (rows,) = outputs.values()
        return rows


class TrtDetector(PerThreadPreprocessing):
    """`Detector` on a TensorRT FP16 engine built from the detector ONNX, NMS on the host.

    ``runner`` (tests only) replaces the GPU part: any callable mapping a preprocessed ``(B, 3, h, w)``
    batch to the cut graph's ``(B, N, 6)`` output.
    """

    def __init__(self, model_path: str | Path, model_cfg: ModelConfig | None = None, *,
                 score_threshold: float | None = None, max_batch: int | None = None,
                 cache_dir: str | Path | None = None, workspace_mb: int = DEFAULT_WORKSPACE_MB,
                 runner: Callable[[np.ndarray], np.ndarray] | None = None, resize: str | None = None) -> None:
        from edge_app.detectors import graph_tools
        from edge_app.detectors.preprocess import checked_resize_mode

        self.resize = checked_resize_mode(resize or (model_cfg.resize if model_cfg else "gluoncv"))
        model_path = Path(model_path)
        model = load_onnx(model_path)
        self.spec = inspect_model(model, model_path, model_cfg)
        self.class_names: tuple[str, ...] = self.spec.class_names
        self.input_size: tuple[int, int] = self.spec.input_size
        self.max_batch = int(max_batch or (model_cfg.batch_size if model_cfg else 8))
        self.score_threshold = float(score_threshold if score_threshold is not None
                                     else (model_cfg.score_threshold if model_cfg else 0.5))
        try:
            prepared = prepare_onnx_for_tensorrt(model)
        except ValueError as exc:
            raise EdgeAppError(f"{model_path}: model.path: cannot cut the graph before NMS for TensorRT ({exc})") \
                from None
        self.nms: NmsParams = graph_tools.read_nms_params(prepared)
        for issue in tensorrt_static_issues(prepared):
            log.warning("%s: graph prepared for TensorRT: %s", model_path, issue)
        self.runner = runner or TrtEngineRunner(prepared.SerializeToString(), self.spec, self.max_batch,
                                                Path(cache_dir) if cache_dir else default_cache_dir(model_path),
                                                workspace_mb)
        self._local = threading.local()

    @classmethod
    def from_config(cls, model_cfg: ModelConfig, **kwargs) -> TrtDetector:
        return cls(model_cfg.path, model_cfg, **kwargs)

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        results: list[Detections] = []
        for start in range(0, len(images), self.max_batch):
            chunk = images[start:start + self.max_batch]
            rows = self.runner(self._preprocessor()(chunk))
            ids, scores, boxes = outputs_to_rows([rows], "before_nms", self.nms)
            results.extend(decode_batch(ids, scores, boxes, [im.shape[:2] for im in chunk], self.input_size,
                                        self.score_threshold, self.class_names))
        return results

"""A laptop stand-in for AWS Panorama's ``panoramasdk`` module (only what the tray counter node uses).

``edge-app panorama run-local`` puts this folder first on ``sys.path`` and installs a runtime
(`edge_app.panorama.local_run.LocalRuntime`) that plays the appliance: it feeds ``video_in`` from video
files, answers ``self.call`` with ONNX Runtime, serves the graph's parameter values and receives
``video_out`` as the HDMI sink. It behaves like the device where the node could notice: an undeclared
input is an ``AttributeError``, ``add_rect`` coordinates must be normalised to 0..1, the model input must
have the model node's name and shape.

Never imported by the app itself: only the node module imports ``panoramasdk``.
"""

from __future__ import annotations

from typing import Any

_runtime: Any = None


def _install(runtime: Any) -> None:
    """Called by the local runner before the node module is imported."""
    global _runtime
    _runtime = runtime


def _current() -> Any:
    if _runtime is None:
        raise RuntimeError("panoramasdk (local): no runtime installed; run the node with `edge-app panorama run-local`")
    return _runtime


def streams_ended() -> bool:
    """Local only: every camera (video file) has ended. The appliance's cameras never end."""
    return bool(_current().ended)


class media:  # noqa: N801 - the SDK's class name
    """One camera frame: ``image`` (BGR uint8 HxWx3), ids, timestamp and the overlay drawn on HDMI."""

    def __init__(self, image: Any, stream_id: str, stream_uri: str, time_stamp: tuple[int, int]) -> None:
        self.image = image
        self.stream_id = stream_id
        self.stream_uri = stream_uri
        self.time_stamp = time_stamp
        self.is_cached = False
        self.rects: list[tuple[float, float, float, float]] = []
        self.labels: list[tuple[str, float, float]] = []

    def add_rect(self, x1: float, y1: float, x2: float, y2: float) -> None:
        coords = (float(x1), float(y1), float(x2), float(y2))
        if not all(0.0 <= c <= 1.0 for c in coords):
            raise ValueError(f"add_rect: coordinates must be normalised to 0..1, got {coords}")
        self.rects.append(coords)

    def add_label(self, text: str, x1: float, y1: float) -> None:
        if not (0.0 <= float(x1) <= 1.0 and 0.0 <= float(y1) <= 1.0):
            raise ValueError(f"add_label: position must be normalised to 0..1, got {(x1, y1)}")
        self.labels.append((str(text), float(x1), float(y1)))


class _Port:
    def __init__(self, name: str, getter: Any = None, putter: Any = None) -> None:
        self.name = name
        self._get = getter
        self._put = putter

    def get(self) -> Any:
        if self._get is None:
            raise RuntimeError(f"port {self.name} is an output port; it has no get()")
        return self._get()

    def put(self, value: Any) -> None:
        if self._put is None:
            raise RuntimeError(f"port {self.name} is an input port; it has no put()")
        self._put(value)


class _Ports:
    def __init__(self, kind: str, ports: dict[str, _Port]) -> None:
        self._kind = kind
        self._ports = ports

    def __getattr__(self, name: str) -> _Port:
        ports = self.__dict__.get("_ports", {})
        if name in ports:
            return ports[name]
        raise AttributeError(f"the node's interface declares no {self.__dict__.get('_kind', '')} port {name!r} "
                             f"(declared: {', '.join(ports) or 'none'})")


class node:  # noqa: N801 - the SDK's class name
    """Base class of a code node; ``inputs`` and ``outputs`` exist before the subclass's ``__init__``."""

    def __new__(cls, *args: Any, **kwargs: Any) -> node:
        obj = super().__new__(cls)
        runtime = _current()
        obj.inputs = _Ports("input", runtime.input_ports())
        obj.outputs = _Ports("output", runtime.output_ports())
        runtime.nodes.append(obj)
        return obj

    def call(self, inputs: dict, node_name: str, time_out: float | None = None) -> Any:
        """Run the model node ``node_name`` on ``inputs`` (``{"data": array}``); returns its outputs."""
        return _current().call_model(node_name, inputs)

"""The Panorama code node: ``class Application(panoramasdk.node)`` and its loop.

On the appliance ``panoramasdk`` is AWS's module; ``edge-app panorama run-local`` puts
``edge_app/panorama/local_sdk`` first on ``sys.path`` so that *this same module* runs on a laptop, with
video files as cameras and ONNX Runtime as the model node. The SDK calls used are the documented ones:

* ``self.inputs.video_in.get()`` -> list of media streams (one per camera), each with ``.image`` (BGR
  uint8), ``.stream_id``, ``.time_stamp``, ``.add_rect(x1, y1, x2, y2)`` and ``.add_label(text, x, y)``
  (coordinates normalised to 0..1);
* ``self.inputs.<parameter>.get()`` -> the graph parameter's value;
* ``self.call({"data": x}, "model_node")`` -> the model node's outputs (GluonCV: class ids, scores, boxes);
* ``self.outputs.video_out.put(streams)`` -> the annotated frames to the HDMI sink.

Logs go to ``/opt/aws/panorama/logs/app.log`` (uploaded to CloudWatch by the appliance), state to
``/opt/aws/panorama/storage`` (kept across application restarts). The counting itself is
`edge_app.panorama.node_counting` (SDK-free, shared with ``edge-app run``'s stages).
"""

from __future__ import annotations

import logging
import os
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

import panoramasdk

from edge_app.errors import EdgeAppError
from edge_app.panorama.node_counting import NodeCounting, NodeSettings

MODEL_NODE = "model_node"
PARAMETERS = tuple(NodeSettings.model_fields)
log = logging.getLogger("edge_app.panorama.node")


def panorama_dir(kind: str) -> Path:
    """``/opt/aws/panorama/<kind>``; ``PANORAMA_<KIND>_DIR`` overrides it (local runs and tests)."""
    return Path(os.environ.get(f"PANORAMA_{kind.upper()}_DIR", f"/opt/aws/panorama/{kind}"))


class Application(panoramasdk.node):
    """Reads the graph parameters once, then counts trays on every frame of every camera."""

    def __init__(self) -> None:
        values = {}
        for name in PARAMETERS:
            values[name] = getattr(self.inputs, name).get()
        self.settings = NodeSettings.from_values(values)
        log.info("parameters: %s", self.settings.model_dump())
        self.counting = NodeCounting(self.settings, panorama_dir("storage"))
        self.frames = 0
        from edge_app.collect.panorama_hook import PanoramaCollectHook  # collection mode (EDGE_APP_COLLECT_MODE)

        self.collect = PanoramaCollectHook.create(panorama_dir("storage"))

    def process_streams(self) -> bool:
        """One frame from every camera; False when there are none (only a local run's files end)."""
        streams = self.inputs.video_in.get()
        if not streams:
            return False
        self.counting.ensure_streams([_name(s) for s in streams])
        for stream in streams:
            self.process_media(stream)
        self.outputs.video_out.put(streams)
        self.frames += 1
        return True

    def process_media(self, stream: Any) -> None:
        image = stream.image
        if self.collect is not None:
            self.collect.offer(stream.stream_id, image, getattr(stream, "time_stamp", 0.0))
        outputs = self.call({"data": self.counting.model_input(image)}, MODEL_NODE)
        if outputs is None:
            log.warning("model node returned no result for stream %s", stream.stream_id)
            return
        overlay = self.counting.on_frame(stream.stream_id, image, getattr(stream, "time_stamp", None),
                                         list(outputs))
        for x1, y1, x2, y2 in overlay.rects:
            stream.add_rect(x1, y1, x2, y2)
        for text, x, y in overlay.labels:
            stream.add_label(text, x, y)


def _name(stream: Any) -> str:
    from edge_app.panorama.node_counting import stream_name

    return stream_name(stream.stream_id)


def setup_logging() -> None:
    """Log to ``<logs>/app.log`` (rotated, 3 x 10 MB) and stderr."""
    logs = panorama_dir("logs")
    logs.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_edge_app_panorama", False):
            root.removeHandler(handler)
            handler.close()
    file_handler = RotatingFileHandler(logs / "app.log", maxBytes=10 * 2**20, backupCount=2)
    stderr_handler = logging.StreamHandler(sys.stderr)
    for handler in (file_handler, stderr_handler):
        handler.setFormatter(formatter)
        handler._edge_app_panorama = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.INFO)


def _streams_ended() -> bool:
    ended = getattr(panoramasdk, "streams_ended", None)  # only the local SDK's cameras can end
    return bool(ended()) if callable(ended) else False


def main() -> Application | None:
    """The node's loop: runs until the cameras end (local files) or the process is stopped."""
    setup_logging()
    log.info("tray counter node starting (Python %s)", sys.version.split()[0])
    try:
        app = Application()
    except EdgeAppError as exc:
        log.error("%s", exc)
        raise
    ended = False
    try:
        while True:
            if not app.process_streams():
                if _streams_ended():
                    ended = True
                    break
    except KeyboardInterrupt:
        log.info("stopping")
    except Exception:
        log.exception("processing loop failed")
        raise
    finally:
        if app.collect is not None:
            app.collect.close()
        app.counting.close(ended=ended)
        log.info("tray counter node stopped after %d frames: %s", app.frames, app.counting.summary())
    return app

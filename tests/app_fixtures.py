"""Test material for the app's integration tests: a tiny hand-written ONNX "slot detector" and a video
whose tray counts are known exactly.

Why not an exported GluonCV net: untrained, it detects noise, so the counts (and whether any bin message
is ever published) would be arbitrary. The slot detector has the GluonCV output layout (class ids
``(B,K,1)``, scores ``(B,K,1)``, boxes ``(B,K,4)``) and runs through the real ONNX Runtime backend, but it
"detects" a tray in each cell of a 4x4 grid whose mean (normalised) brightness is high. The video draws
white trays in those cells, bin after bin, so the true count of every bin is known by construction.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

GRID = 4
INPUT = 64  # network input is INPUT x INPUT; one cell is INPUT / GRID pixels
FRAME_W, FRAME_H = 320, 240
FPS = 10.0


def slot_detector_onnx(path: Path) -> Path:
    """Write the slot detector: score = sigmoid(4 * mean of the cell over channels); fixed cell boxes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    cell = INPUT // GRID
    k = GRID * GRID
    boxes = np.array([[[c * cell + 2, r * cell + 2, (c + 1) * cell - 2, (r + 1) * cell - 2]
                       for r in range(GRID) for c in range(GRID)]], np.float32)  # (1, K, 4), row-major cells
    init = [
        numpy_helper.from_array(boxes, "cell_boxes"),
        numpy_helper.from_array(np.array([4.0], np.float32), "gain"),
        numpy_helper.from_array(np.array([0.0], np.float32), "zero"),
        numpy_helper.from_array(np.array([-1, k, 1], np.int64), "score_shape"),
        numpy_helper.from_array(np.array([k, 4], np.int64), "box_tail"),
        numpy_helper.from_array(np.array([0], np.int64), "start0"),
        numpy_helper.from_array(np.array([1], np.int64), "end1"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["data"], ["gray"], axes=[1], keepdims=1),
        helper.make_node("AveragePool", ["gray"], ["cells"], kernel_shape=[cell, cell], strides=[cell, cell]),
        helper.make_node("Reshape", ["cells", "score_shape"], ["cell_means"]),
        helper.make_node("Mul", ["cell_means", "gain"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["scores"]),
        helper.make_node("Mul", ["scores", "zero"], ["ids"]),
        helper.make_node("Shape", ["data"], ["in_shape"]),
        helper.make_node("Slice", ["in_shape", "start0", "end1"], ["batch"]),
        helper.make_node("Concat", ["batch", "box_tail"], ["box_shape"], axis=0),
        helper.make_node("Expand", ["cell_boxes", "box_shape"], ["boxes"]),
    ]
    graph = helper.make_graph(
        nodes, "slot_detector",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["batch", 3, INPUT, INPUT])],
        [helper.make_tensor_value_info("ids", TensorProto.FLOAT, ["batch", k, 1]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", k, 1]),
         helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["batch", k, 4])],
        init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in {"class_names": json.dumps(["tray"]), "input_width": str(INPUT),
                       "input_height": str(INPUT), "model_version": "test-slot-detector-1"}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _cell_rect(index: int) -> tuple[int, int, int, int]:
    cw, ch = FRAME_W // GRID, FRAME_H // GRID
    r, c = divmod(index, GRID)
    return c * cw + 6, r * ch + 6, (c + 1) * cw - 6, (r + 1) * ch - 6


def bins_video(path: Path, bins: list[int], *, every: int = 4, hold: int = 12, gap: int = 14) -> Path:
    """A video filling ``bins`` (trays per bin) one tray every ``every`` frames, holding the full bin for
    ``hold`` frames, then ``gap`` empty frames (the full bin carried away); writes ``truth.json`` beside it."""
    import cv2

    frames: list[np.ndarray] = []
    for trays in bins:
        for shown in range(1, trays + 1):
            for _ in range(every if shown < trays else hold):
                image = np.full((FRAME_H, FRAME_W, 3), 20, np.uint8)
                for i in range(shown):
                    x1, y1, x2, y2 = _cell_rect(i)
                    cv2.rectangle(image, (x1, y1), (x2, y2), (255, 255, 255), -1)
                frames.append(image)
        frames.extend(np.full((FRAME_H, FRAME_W, 3), 20, np.uint8) for _ in range(gap))
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (FRAME_W, FRAME_H))
    for image in frames:
        writer.write(image)
    writer.release()
    truth = {"bins": [{"bin_id": i + 1, "trays": n} for i, n in enumerate(bins)], "total_trays": sum(bins)}
    path.with_name("truth.json").write_text(json.dumps(truth), encoding="utf-8")
    return path

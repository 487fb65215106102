"""`training.evaluate.evaluate_onnx`'s metrics on hand-made detections: VOC07 11-point, VOC2010+ area, recall."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_app.detections import Detections
from training import evaluate
from training.data import Sample


class ScriptedDetector:
    """Returns prepared detections image by image (the ONNX model is not what is tested here)."""

    class_names = ("tray",)

    def __init__(self, per_image: list[list[tuple[list[float], float]]]) -> None:
        self.per_image = iter(per_image)

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        rows = next(self.per_image)
        boxes = np.array([b for b, _ in rows], np.float32).reshape(-1, 4)
        scores = np.array([s for _, s in rows], np.float32)
        return [Detections(boxes, scores, np.zeros(len(rows), np.int32), self.class_names)]


@pytest.fixture
def two_images(tmp_path: Path) -> list[Sample]:
    samples = []
    for i, boxes in enumerate([[[10, 10, 50, 50, 0], [60, 10, 100, 50, 0]], [[10, 60, 50, 100, 0]]]):
        path = tmp_path / f"{i}.jpg"
        cv2.imwrite(str(path), np.zeros((120, 120, 3), np.uint8))
        samples.append(Sample(str(path), np.array(boxes, np.float32)))
    return samples


def test_voc07_has_a_cliff_at_recall_one_that_the_area_metric_does_not(monkeypatch, two_images) -> None:  # noqa: ANN001
    # 2 of the 3 boxes found with perfect precision, the third never found: recall tops out at 2/3.
    detector = ScriptedDetector([[([10, 10, 50, 50], 0.9), ([60, 10, 100, 50], 0.8)], []])
    monkeypatch.setattr(evaluate, "load_detector", lambda model, resize="gluoncv": detector)
    result = evaluate.evaluate_onnx(Path("unused.onnx"), two_images)
    assert result.map == pytest.approx(7 / 11, abs=1e-6)  # recall points 0, 0.1, ..., 0.6 at precision 1
    assert result.map_area == pytest.approx(2 / 3, abs=1e-6)  # area under the PR curve
    assert result.max_recall == pytest.approx(2 / 3, abs=1e-6)
    assert result.totals() == {"tp": 2, "fp": 0, "fn": 1}
    assert result.to_dict()["map_area"] == pytest.approx(0.6667, abs=1e-4)


def test_finding_every_box_lifts_both_metrics_to_one(monkeypatch, two_images) -> None:  # noqa: ANN001
    detector = ScriptedDetector([[([10, 10, 50, 50], 0.9), ([60, 10, 100, 50], 0.8)], [([10, 60, 50, 100], 0.3)]])
    monkeypatch.setattr(evaluate, "load_detector", lambda model, resize="gluoncv": detector)
    result = evaluate.evaluate_onnx(Path("unused.onnx"), two_images, operating_threshold=0.5)
    assert result.map == pytest.approx(1.0) and result.map_area == pytest.approx(1.0) and result.max_recall == 1.0
    assert result.totals() == {"tp": 2, "fp": 0, "fn": 1}  # the third box scored below the operating threshold


def test_eval_command_prints_both_metrics_and_rejects_a_bad_resize(tmp_path: Path) -> None:
    import json
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    records = []
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"{i}.jpg"), np.full((120, 160, 3), 90, np.uint8))
        records.append({"source-ref": f"{i}.jpg", "label": {
            "image_size": [{"width": 160, "height": 120, "depth": 3}],
            "annotations": [{"class_id": 0, "left": 20, "top": 20, "width": 50, "height": 40}]},
            "label-metadata": {"type": "groundtruth/object-detection", "class-map": {"0": "tray"}}})
    manifest = tmp_path / "output.manifest"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    app = str(repo / ".venv" / "bin" / "edge-app")
    model = str(repo / "models" / "tray_detector.onnx")
    done = subprocess.run([app, "eval", "--model", model, "--data", str(manifest), "--resize", "linear",
                           "--out", str(tmp_path / "eval.json")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(linear resize): mAP@0.5" in done.stdout and "VOC2010+ area" in done.stdout
    report = json.loads((tmp_path / "eval.json").read_text())["fp32"]
    assert {"map", "map_area", "max_recall"} <= set(report) and report["gt_boxes"] == 2
    bad = subprocess.run([app, "eval", "--model", model, "--data", str(manifest), "--resize", "area"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --resize: expected one of gluoncv, linear (got 'area')"

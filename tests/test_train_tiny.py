"""A tiny real training run (a few iterations on tiny images) end to end: LST -> train -> ONNX/FP16 -> edge app.

Built once per session into tests/.cache-free tmp dirs; asserts the artefacts exist, that the ONNX metadata is
what the edge detector reads, that its ORT backend loads and runs both files, and that resuming continues.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from training.train import lr_at, run

pytestmark = pytest.mark.slow  # ~20 s of CPU (MXNet build + 6 steps + ONNX export/FP16 + ORT), more under load


def _tiny_dataset(root: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True)
    records = []
    for i in range(n):
        img = np.full((72, 96, 3), 60, np.uint8)
        x, y = int(rng.integers(5, 50)), int(rng.integers(5, 30))
        w, h = int(rng.integers(20, 40)), int(rng.integers(15, 35))
        cv2.rectangle(img, (x, y), (x + w, y + h), (230, 230, 230), -1)
        cv2.imwrite(str(root / "img" / f"{i}.jpg"), img)
        records.append({"source-ref": f"img/{i}.jpg", "bounding-box": {
            "image_size": [{"width": 96, "height": 72, "depth": 3}],
            "annotations": [{"class_id": 0, "left": x, "top": y, "width": w, "height": h}]},
            "bounding-box-metadata": {"type": "groundtruth/object-detection", "class-map": {"0": "tray"}}})
    path = root / "output.manifest"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict, list[str]]:
    root = tmp_path_factory.mktemp("tiny")
    train = _tiny_dataset(root / "train", 8, 0)
    val = _tiny_dataset(root / "val", 4, 1)
    argv = ["--train", str(train), "--validation", str(val), "--model-dir", str(root / "model"),
            "--input-size", "128", "--batch-size", "4", "--epochs", "2", "--iters-per-epoch", "2",
            "--warmup-iters", "1", "--seed", "3", "--progress", "false", "--model-version", "tiny-test",
            "--select-metric", "area", "--ema-decay", "0.99"]
    return root / "model", run(argv), argv


def test_outputs_and_metadata(trained) -> None:
    from training.export import read_metadata

    model_dir, metrics, _ = trained
    for name in ("tray_detector-symbol.json", "tray_detector-0000.params", "tray_detector.onnx",
                 "tray_detector_fp16.onnx", "metrics.json"):
        assert (model_dir / name).is_file(), name
    assert metrics["iterations"] == 4 and metrics["epochs_run"] == 2
    assert 0.0 <= metrics["val_map_mxnet"] <= 1.0 and len(metrics["history"]) == 2
    assert metrics["hyperparameters"]["select_metric"] == "area"
    assert all("val_map_raw" in h for h in metrics["history"])  # EMA weights validated, raw ones recorded
    assert (model_dir / "checkpoints" / "last.ema").is_file()  # the average survives a resume
    assert len(metrics["dataset_hash"]) == 64
    meta = read_metadata(model_dir / "tray_detector.onnx")
    assert json.loads(meta["class_names"]) == ["tray"]
    assert (meta["input_width"], meta["input_height"], meta["model_version"]) == ("128", "128", "tiny-test")
    assert meta["architecture"] == "ssd_mobilenet0.25"
    assert read_metadata(model_dir / "tray_detector_fp16.onnx")["precision"] == "fp16"
    fp32_bytes = (model_dir / "tray_detector.onnx").stat().st_size
    assert (model_dir / "tray_detector_fp16.onnx").stat().st_size < 0.6 * fp32_bytes


def test_edge_app_ort_backend_runs_fp32_and_fp16(trained) -> None:
    from edge_app.detectors.onnx_detector import OrtDetector

    model_dir, _, _ = trained
    frames = [np.full((72, 96, 3), 60, np.uint8), np.full((360, 640, 3), 90, np.uint8)]
    outs = {}
    for name in ("tray_detector.onnx", "tray_detector_fp16.onnx"):
        det = OrtDetector.from_path(model_dir / name, score_threshold=0.0)
        assert det.class_names == ("tray",) and det.input_size == (128, 128)
        result = det.detect(frames)
        assert len(result) == 2
        assert all(np.isfinite(d.boxes).all() for d in result)
        assert (result[1].boxes[:, 2] <= 640 + 1).all()  # mapped back to frame pixels
        outs[name] = det.infer(np.zeros((1, 3, 128, 128), np.float32))
    # FP16 computes the same network: scores agree to half precision
    np.testing.assert_allclose(np.sort(outs["tray_detector_fp16.onnx"][1].ravel()),
                               np.sort(outs["tray_detector.onnx"][1].ravel()), atol=2e-2)


def test_resume_continues_from_checkpoint(trained) -> None:
    model_dir, _, argv = trained
    more = [a if a != "2" or argv[i - 1] != "--epochs" else "3" for i, a in enumerate(argv)]
    metrics = run(more + ["--export-onnx", "false"])
    assert metrics["epochs_run"] == 3 and metrics["iterations"] == 6
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3]


def test_lr_schedule_warmup_then_cosine_and_time_budget() -> None:
    assert lr_at(0, 100, 1.0, 10) == pytest.approx(0.01)
    assert lr_at(10, 100, 1.0, 10) == pytest.approx(1.0)
    assert lr_at(100, 100, 1.0, 10) == pytest.approx(0.01)
    assert lr_at(55, 100, 1.0, 10) == pytest.approx(0.505, abs=1e-3)
    assert lr_at(20, 100, 1.0, 10, time_fraction=1.0) == pytest.approx(0.01)  # budget used up: annealed

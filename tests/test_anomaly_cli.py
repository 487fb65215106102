"""Bad input gives one clear line (exit 2), and train / eval / predict work from the command line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from anomaly_helpers import cached_dataset_and_model
from conftest import REPO

from edge_app.anomaly import data as datasets
from edge_app.anomaly.runtime import AnomalyModel
from edge_app.anomaly.train import train_from_images
from edge_app.errors import EdgeAppError

EDGE_APP = str(REPO / ".venv" / "bin" / "edge-app")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EDGE_APP, *args], capture_output=True, text=True, timeout=120)


def _write(folder: Path, n: int, size: tuple[int, int] = (64, 64)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:03d}.png"), rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    return folder


def test_too_few_normal_images_is_one_line_exit_2(tmp_path: Path) -> None:
    normal = _write(tmp_path / "normal", 12)
    result = _run("anomaly", "train", "--normal", str(normal), "--out", str(tmp_path / "m"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {normal}: found 12 normal images, need at least 20"]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m").exists()


def test_empty_folder_unreadable_image_mixed_sizes(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EdgeAppError, match="no images found"):
        datasets.normal_training_paths(empty)
    broken = _write(tmp_path / "broken", 20)
    (broken / "005.png").write_bytes(b"not a png")
    with pytest.raises(EdgeAppError, match=r"005\.png: not a readable image"):
        datasets.load_images(datasets.normal_training_paths(broken), None, 64)
    mixed = _write(tmp_path / "mixed", 20)
    cv2.imwrite(str(mixed / "007.png"), np.zeros((80, 64, 3), np.uint8))
    with pytest.raises(EdgeAppError, match=r"007\.png: image is 64x80 but 000\.png is 64x64"):
        datasets.load_images(datasets.normal_training_paths(mixed), None, 64)
    with pytest.raises(EdgeAppError, match="roi 10,10,60,60 does not fit in a 64x64 image"):
        datasets.load_images(datasets.normal_training_paths(mixed)[:3], (10, 10, 60, 60), 64)
    with pytest.raises(EdgeAppError, match="--roi: expected x,y,w,h"):
        datasets.parse_roi("1,2,3")
    with pytest.raises(EdgeAppError, match="need at least 20"):
        train_from_images([np.zeros((64, 64, 3), np.uint8)] * 19, tmp_path / "m")
    result = _run("anomaly", "train", "--normal", str(empty), "--out", str(tmp_path / "m"))
    assert result.returncode == 2 and result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1


def test_eval_folder_needs_both_classes(tmp_path: Path) -> None:
    _write(tmp_path / "test" / "good", 3)
    with pytest.raises(EdgeAppError, match="expected normal/"):
        datasets.eval_items(tmp_path)


def test_mvtec_layout_is_accepted(tmp_path: Path) -> None:
    _write(tmp_path / "train" / "good", 20)
    _write(tmp_path / "test" / "good", 2)
    _write(tmp_path / "test" / "scratch", 2)
    (tmp_path / "ground_truth" / "scratch").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "ground_truth" / "scratch" / "000_mask.png"), np.full((64, 64), 255, np.uint8))
    assert len(datasets.normal_training_paths(tmp_path)) == 20
    items = datasets.eval_items(tmp_path)
    assert [(i.label, i.defect) for i in items] == [(0, "good"), (0, "good"), (1, "scratch"), (1, "scratch")]
    assert items[2].mask_path == tmp_path / "ground_truth" / "scratch" / "000_mask.png"
    assert items[3].mask_path is None


def test_eval_and_predict_on_the_sim_part(tmp_path: Path) -> None:
    part, model_dir = cached_dataset_and_model()
    result = _run("anomaly", "eval", str(model_dir), "--data", str(part), "--out", str(tmp_path / "eval"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["n_normal"] == 6 and report["n_anomalous"] == 6
    assert report["image_auroc"] >= 0.9 and report["pixel_auroc"] >= 0.85
    assert (tmp_path / "eval" / "roc.png").stat().st_size > 1000
    assert len(list((tmp_path / "eval" / "overlays").glob("*.png"))) == 12

    abnormal = sorted((part / "test" / "abnormal").glob("*.png"))[0]
    normal = sorted((part / "test" / "normal").glob("*.png"))[0]
    result = _run("anomaly", "predict", str(model_dir), str(abnormal), str(normal), "--out", str(tmp_path / "p"))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [r["is_anomalous"] for r in rows] == [True, False]
    for row in rows:
        assert set(row) >= {"is_anomalous", "score", "confidence", "area_percent", "mask_path"}
        mask = cv2.imread(row["mask_path"], cv2.IMREAD_GRAYSCALE)
        assert mask.shape == (256, 256)
        assert row["area_percent"] == pytest.approx((mask > 0).mean() * 100, abs=0.5)
        assert 0.5 <= row["confidence"] <= 1.0
    assert rows[0]["score"] > 0.5 > rows[1]["score"] and rows[0]["area_percent"] > 0


def test_predict_rejects_an_image_of_the_wrong_size(tmp_path: Path) -> None:
    _, model_dir = cached_dataset_and_model()
    model = AnomalyModel(model_dir)
    with pytest.raises(EdgeAppError, match="image is 300x200, expected 256x256"):
        model.predict(np.zeros((200, 300, 3), np.uint8), "odd.png")
    odd = tmp_path / "odd.png"
    cv2.imwrite(str(odd), np.zeros((200, 300, 3), np.uint8))
    result = _run("anomaly", "predict", str(model_dir), str(odd))
    assert result.returncode == 2 and "expected 256x256 like the training images" in result.stderr

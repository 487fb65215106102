"""Collection mode of the Panorama code node: off by default, on with EDGE_APP_COLLECT_MODE; the node's frames
are spooled under its storage folder (the node itself runs through `edge-app panorama run-local`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CACHE

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app_fixtures import bins_video, slot_detector_onnx  # noqa: E402
from panorama_helpers import copy_project  # noqa: E402

from edge_app.collect.panorama_hook import PanoramaCollectHook, settings_from  # noqa: E402


def test_hook_is_off_unless_switched_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_APP_COLLECT_MODE", raising=False)
    assert PanoramaCollectHook.create(tmp_path) is None
    assert PanoramaCollectHook.create(tmp_path, {"collect_mode": "false"}) is None
    monkeypatch.setenv("EDGE_APP_COLLECT_MODE", "1")
    monkeypatch.setenv("EDGE_APP_COLLECT_EVERY_S", "10")
    assert settings_from({"collect_every_s": 5}) == {"collect_mode": "1", "collect_every_s": 5}  # given wins
    roi = [[0, 0], [64, 0], [64, 48], [0, 48]]
    hook = PanoramaCollectHook.create(tmp_path, {"collect_rois": json.dumps({"cam_1": roi})})
    assert hook is not None and hook.every_s == 10.0
    for i in range(30):  # 1 fps for 30 s, (seconds, microseconds) time stamps as the SDK gives them
        image = np.zeros((48, 64, 3), np.uint8)
        image[10:30, i * 2:i * 2 + 12] = 255  # a tray moving across: every kept frame differs
        hook.offer("cam 1", image, (1_700_000_000 + i, 250_000))
    hook.close()
    items = hook.spool.pending()
    assert len(items) == 3  # t = 0, 10, 20
    side = items[0].read_sidecar()
    assert side["stream"] == "cam_1" and side["roi"] == roi
    assert side["stream_time_s"] == pytest.approx(1_700_000_000.25)


def test_node_run_local_collects_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_app.panorama.local_run import run_local

    model, video = CACHE / "app" / "slot_detector.onnx", CACHE / "app" / "bins_5_3" / "video.mp4"
    if not model.is_file():
        slot_detector_onnx(model)
    if not video.is_file():
        bins_video(video, [5, 3])
    monkeypatch.setenv("EDGE_APP_COLLECT_MODE", "true")
    monkeypatch.setenv("EDGE_APP_COLLECT_EVERY_S", "2")
    root = copy_project(tmp_path / "project")
    out = tmp_path / "out"
    result = run_local(root, cameras=[f"line_cam={video}"], model=model, out_dir=out,
                       params=["model_input_size=64"], max_frames=60)
    assert result.streams["line_cam"]["frames"] == 60
    pending = sorted((out / "storage" / "collect" / "pending").glob("*.jpg"))
    assert pending, "collection mode saved nothing"
    sides = [json.loads(p.with_suffix(".json").read_text()) for p in pending]
    assert {s["stream"] for s in sides} == {"line_cam"}
    times = [s["stream_time_s"] for s in sides]
    assert all(b - a >= 2.0 for a, b in zip(times, times[1:], strict=False))

"""Benchmarks of the pipeline: capacity arithmetic, the paced camera, and `--short` runs of both commands."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import CACHE, REPO

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app_fixtures import bins_video  # noqa: E402

from edge_app.bench.capacity import plant_table
from edge_app.bench.paced import PacedVideoSource


@pytest.fixture(scope="module")
def video() -> Path:
    path = CACHE / "app" / "bins_5_3" / "video.mp4"
    return path if path.is_file() else bins_video(path, [5, 3])


def test_plant_table_divides_demand_by_usable_capacity() -> None:
    plan = plant_table(100.0, cameras=[4, 16, 17], rates=[5.0, 10.0], headroom=0.8)  # 80 fps usable
    devices = {(p["cameras"], p["fps"]): p["devices"] for p in plan}
    assert devices[(4, 5.0)] == 1  # 20 fps
    assert devices[(16, 5.0)] == 1  # 80 fps: exactly one device
    assert devices[(16, 10.0)] == 2  # 160 fps
    assert devices[(17, 10.0)] == 3  # 170 fps: a third device for the last 10 fps
    assert all(p["devices"] is None for p in plant_table(0.0, [4], [5.0], 0.8))


def test_paced_source_offers_exactly_fps_times_duration_live_frames(video: Path) -> None:
    source = PacedVideoSource("cam", video, fps=40.0, duration_s=0.5)
    frames = list(source)
    assert source.offered == 20
    assert len(frames) + source.missed == 20
    assert all(f.live and f.stream == "cam" for f in frames)
    assert [f.index for f in frames] == sorted(f.index for f in frames)


def test_paced_source_stops_on_request(video: Path) -> None:
    source = PacedVideoSource("cam", video, fps=5.0, duration_s=60.0)
    threading.Timer(0.3, source.stop).start()
    frames = list(source)  # would take a minute without the stop
    assert 0 < len(frames) < source.offered


@pytest.mark.slow
@pytest.mark.parametrize("bench", ["pipeline", "capacity"])
def test_short_benchmarks_run_and_write_their_results(bench: str, tmp_path: Path) -> None:
    done = subprocess.run([str(REPO / ".venv" / "bin" / "edge-app"), "bench", bench, "--short", "--width", "320",
                           "--height", "240", "--out", str(tmp_path),
                           *(["--compare-stacking"] if bench == "pipeline" else [])],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / f"{bench}.json").read_text())
    assert (tmp_path / f"{bench}.png").stat().st_size > 1000
    if bench == "pipeline":
        assert [r["streams"] for r in result["rows"]] == [1, 2]
        assert result["resize"] == "linear" and result["background_nice"] == 5 and not result["pinned"]  # as `run`
        assert result["stack_ahead"] and all(r["other_stacking_fps"] > 0 for r in result["rows"])
        assert "same rounds, stack ahead False" in done.stdout
        assert all(len(r["round_ratios"]) == 1 and r["of_ceiling_median"] == r["round_ratios"][0]
                   for r in result["rows"])
        assert all(r["pipeline_fps"] > 0 and r["bare_fps"] > 0 and r["mxnet_fps"] > 0 for r in result["rows"])
        assert "of bare session" in done.stdout and "x MXNet loop" in done.stdout  # the two target verdicts
    else:
        assert result["steps"] and result["max_sustainable_fps"] > 0
        assert {p["cameras"] for p in result["plant"]} == {4, 8, 16, 32, 64}

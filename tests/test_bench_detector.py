"""`edge-app bench detector` runs every available backend and writes consistent figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from detector_models import exported
from typer.testing import CliRunner

from edge_app.bench.cli import app
from edge_app.bench.detector import _parse_batches
from edge_app.errors import EdgeAppError


def test_bench_detector_writes_table_json_and_png(tmp_path: Path) -> None:
    out, png = tmp_path / "detector.json", tmp_path / "detector.png"
    result = CliRunner().invoke(app, ["detector", "--model", str(exported("ssd")), "--batches", "1,2",
                                      "--iterations", "2", "--warmup", "0", "--frame-size", "320x240",
                                      "--json", str(out), "--png", str(png)])
    assert result.exit_code == 0, result.output
    assert "ort-basic" in result.output and "images/s" in result.output
    data = json.loads(out.read_text())
    backends = {r["backend"] for r in data["results"]}
    assert {"ort-basic", "ort-all", "ort-cut+nms"} <= backends
    assert sorted({r["batch"] for r in data["results"]}) == [1, 2]
    for r in data["results"]:
        assert r["p50_ms"] > 0 and r["images_per_s"] > 0
        assert r["images_per_s"] == pytest.approx(r["batch"] / (r["mean_ms"] / 1e3))
        if r["backend"] == "ort-basic":
            assert r["vs_ort_basic"] == pytest.approx(1.0)
    assert png.stat().st_size > 1000


def test_parse_batches() -> None:
    assert _parse_batches("1-8") == list(range(1, 9))
    assert _parse_batches("1,2,4") == [1, 2, 4]
    with pytest.raises(EdgeAppError, match="--batches"):
        _parse_batches("one")
    with pytest.raises(EdgeAppError, match="between 1 and 64"):
        _parse_batches("0,2")

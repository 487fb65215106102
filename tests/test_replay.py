"""Detections replay: writer/reader round trip, one-line errors, `edge-app count` (real console script)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from edge_app.config import CounterParams
from edge_app.detections import Detections
from edge_app.errors import EdgeAppError
from edge_app.replay import (
    ReplayRecord,
    ReplayWriter,
    StreamCounting,
    count_from_cli,
    count_records,
    read_replay,
    summary,
)
from edge_app.roi import Roi
from sim.error_model import ErrorModel
from sim.scenarios import Scenario, preset, write_detections

EDGE_APP = Path(sys.executable).parent / "edge-app"


def dets(boxes: list[list[float]], scores: list[float], labels: list[str], names=("tray", "hand")) -> Detections:  # noqa: ANN001
    ids = [names.index(label) for label in labels]
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32), ids, names)


def test_round_trip_and_flush_per_line(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    frames = [
        ("line-1", 0, 0.0, dets([[1.5, 2.25, 30.125, 40]], [0.93], ["tray"])),
        ("line-2", 0, 1795441000.123456, dets([], [], [])),
        ("line-1", 1, 0.0667, dets([[10, 20, 30, 40], [50, 60, 70, 80]], [0.51, 0.2], ["tray", "hand"])),
    ]
    with ReplayWriter(path) as writer:
        for i, (stream, frame, t, d) in enumerate(frames):
            writer.write(stream, frame, t, d)
            # Flushed per frame: a reader (or a crash) sees every finished line at once.
            assert len(path.read_text().splitlines()) == i + 1
    records = list(read_replay(path, ("tray", "hand")))
    assert [(r.stream, r.frame, r.t) for r in records] == [(s, f, t) for s, f, t, _ in frames]
    for rec, (_, _, _, d) in zip(records, frames, strict=True):
        np.testing.assert_allclose(rec.detections.boxes, d.boxes, atol=0.01)
        np.testing.assert_allclose(rec.detections.scores, d.scores, atol=1e-4)
        assert rec.detections.names == d.names
    # Appending to an existing recording keeps what was there.
    with ReplayWriter(path) as writer:
        writer.write_record(records[0])
    assert len(list(read_replay(path))) == 4


def test_documented_example_line_parses(tmp_path: Path) -> None:
    path = tmp_path / "doc.jsonl"
    path.write_text('{"stream": "line-1", "frame": 12, "t": 0.4, "detections": [{"box": [1, 2, 3, 4], '
                    '"score": 0.93, "label": "tray"}]}\n\n{"stream": "line-1", "frame": 13, "t": 0.5, '
                    '"detections": [{"box": [1, 2, 3, 4]}]}\n')
    first, second = read_replay(path)
    assert (first.stream, first.frame, first.t, len(first.detections)) == ("line-1", 12, 0.4, 1)
    assert second.detections.scores[0] == 1.0 and second.detections.names == ["tray"]


GOOD = '{"stream": "s", "frame": 0, "t": 0, "detections": []}\n'
BROKEN = {
    "not JSON": ('{"stream": "s", "frame": 1,', "not valid JSON"),
    "not an object": ("[1, 2]", "expected a JSON object"),
    "missing key": ('{"stream": "s", "frame": 1, "t": 0.1}', "missing key 'detections'"),
    "negative frame": ('{"stream": "s", "frame": -1, "t": 0.1, "detections": []}', "frame: expected an integer"),
    "t as text": ('{"stream": "s", "frame": 1, "t": "0.1", "detections": []}', "t: expected a number"),
    "short box": ('{"stream": "s", "frame": 1, "t": 0.1, "detections": [{"box": [1, 2, 3]}]}',
                  "detections.0.box: expected [x1, y1, x2, y2]"),
    "score as text": ('{"stream": "s", "frame": 1, "t": 0.1, "detections": [{"box": [1, 2, 3, 4], "score": "hi"}]}',
                      "detections.0.score"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_line_is_one_error_naming_file_and_line(tmp_path: Path, name: str) -> None:
    text, message = BROKEN[name]
    path = tmp_path / "broken.jsonl"
    path.write_text(GOOD + GOOD + text + "\n" + GOOD)
    with pytest.raises(EdgeAppError) as info:
        list(read_replay(path))
    error = str(info.value)
    assert error.startswith(f"{path}:3: "), error
    assert message in error and "\n" not in error


def test_truncated_last_line_from_a_crash_is_skipped_with_a_warning(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    path = tmp_path / "crashed.jsonl"
    path.write_text(GOOD + GOOD + '{"stream": "s", "fra')
    assert len(list(read_replay(path))) == 2
    assert f"{path}:3:" in capsys.readouterr().err
    with pytest.raises(EdgeAppError, match="not found"):
        list(read_replay(tmp_path / "missing.jsonl"))


def test_count_applies_threshold_classes_and_roi() -> None:
    inside, outside = [10, 10, 20, 20], [110, 110, 120, 120]
    frame = dets([inside, inside, outside, inside], [0.9, 0.3, 0.9, 0.9], ["tray", "tray", "tray", "hand"])
    setting = StreamCounting(roi=Roi([(0, 0), (50, 0), (50, 50), (0, 50)]), score_threshold=0.5,
                             count_classes=["tray"])
    assert setting.n_trays(frame) == 1
    assert StreamCounting().n_trays(frame) == 3  # defaults: threshold 0.5, all classes, no ROI
    assert StreamCounting(score_threshold=0.25, count_classes=["tray"]).n_trays(frame) == 3


def _write_scenario(tmp_path: Path, error_model: ErrorModel, seed: int = 3) -> tuple[Path, dict]:
    # No camera outage here: a bin swapped while the camera is down would make the truth unreachable.
    scenario = Scenario(replace(preset("line-4"), outages=0), duration_s=240.0, error_model=error_model, seed=seed)
    write_detections(scenario, tmp_path)
    return tmp_path / "detections.jsonl", json.loads((tmp_path / "truth.json").read_text())


PERFECT = ErrorModel(miss_rate=0.0, hard_tray_share=0.0, partial_miss_rate=0.0, fp_per_min=0.0,
                     low_fp_per_frame=2.0, jitter=0.01)
"""No misses, no false positives above the threshold, but low-score boxes everywhere."""


def test_edge_app_count_console_script_prints_json_as_last_line(tmp_path: Path) -> None:
    detections, truth = _write_scenario(tmp_path, PERFECT)
    assert truth["total_trays"] > 0 and len(truth["bins"]) >= 3
    for extra in ([], ["--config", str(tmp_path / "counting.yaml")]):
        proc = subprocess.run([str(EDGE_APP), "count", "--detections", str(detections), *extra],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        last = json.loads(proc.stdout.strip().splitlines()[-1])
        assert last == {"streams": {"line-4": {"global": truth["total_trays"],
                                               "bins": [b["trays"] for b in truth["bins"]]}}}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(GOOD + "{oops}\n")
    proc = subprocess.run([str(EDGE_APP), "count", "--detections", str(bad)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith(f"error: {bad}:2: not valid JSON")


def test_config_roi_and_unknown_streams(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    detections, truth = _write_scenario(tmp_path, PERFECT, seed=4)
    config = tmp_path / "counting.yaml"
    # Another stream in the same file that the config does not know: counted with defaults + a warning.
    lines = detections.read_text().splitlines()
    extra = [json.dumps({**json.loads(line), "stream": "line-9"}) for line in lines[:50]]
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("\n".join(lines + extra) + "\n")
    count_from_cli(mixed, config)
    out, err = capsys.readouterr()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["streams"]["line-4"]["global"] == truth["total_trays"]
    assert "line-9" in result["streams"]
    assert "stream 'line-9' is not in the config" in err
    # A config whose ROI misses the bin counts nothing.
    cfg = yaml.safe_load(config.read_text())
    cfg["streams"][0]["roi"] = [[0, 0], [10, 0], [10, 10]]
    config.write_text(yaml.safe_dump(cfg))
    count_from_cli(detections, config)
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result == {"streams": {"line-4": {"global": 0, "bins": []}}}


def test_count_records_uses_per_stream_params() -> None:
    """Two streams interleaved in one file, each with its own counter parameters."""
    records = []
    box = [10.0, 10.0, 20.0, 20.0]
    for i in range(400):
        n = min(i // 20 + 1, 8) if i < 250 else 0
        d = dets([box] * n, [0.9] * n, ["tray"] * n)
        records += [ReplayRecord("a", i, i / 10, d), ReplayRecord("b", i, i / 10, d)]
    counters = count_records(records, {"a": StreamCounting(CounterParams()),
                                       "b": StreamCounting(CounterParams(smoothing=301, quantile=0.5,
                                                                         final_window_s=0.0))})
    result = summary(counters)["streams"]
    assert result["a"] == {"global": 8, "bins": [8]}
    assert result["b"]["global"] < 8  # a 30 s median never sees the last trays: the params were applied

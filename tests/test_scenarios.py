"""Detection-level scenarios (`edge-app sim detections`) and the counting benchmark."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_app.bench.counting import counting, exact_bins, run_scenario
from sim.error_model import ErrorModel, TrayDetectorSim
from sim.scenarios import LINE_PRESETS, Scenario, ScenarioRun, preset


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sim_detections_is_deterministic_and_writes_truth(tmp_path: Path) -> None:
    from sim.cli import app

    runner = CliRunner()
    outs = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        out = tmp_path / name
        result = runner.invoke(app, ["detections", "--out", str(out), "--line", "line-2", "--seed", str(seed),
                                     "--duration", "120"])
        assert result.exit_code == 0, result.output
        assert "edge-app count --detections" in result.output
        outs.append(out)
    assert digest(outs[0] / "detections.jsonl") == digest(outs[1] / "detections.jsonl")
    assert digest(outs[0] / "truth.json") == digest(outs[1] / "truth.json")
    assert digest(outs[0] / "detections.jsonl") != digest(outs[2] / "detections.jsonl")
    truth = json.loads((outs[0] / "truth.json").read_text())
    assert set(truth) == {"line", "fps", "bins", "total_trays"}
    assert truth["line"] == "line-2" and truth["fps"] == 15.0
    assert set(truth["bins"][0]) == {"bin_id", "trays", "start_t", "end_t"}
    lines = (outs[0] / "detections.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert set(first) == {"stream", "frame", "t", "detections"} and first["stream"] == "line-2"
    assert len(lines) == 120 * 15  # line-2 has no outage: one line per frame, empty frames included
    bad = runner.invoke(app, ["detections", "--out", str(tmp_path / "x"), "--line", "line-9"])
    assert bad.exit_code != 0


@pytest.mark.parametrize("line", list(LINE_PRESETS))
def test_truth_is_consistent_with_the_process(line: str) -> None:
    scenario = Scenario(preset(line), duration_s=900.0, seed=11)
    run = ScenarioRun(scenario)
    truth = run.truth
    bins = truth["bins"]
    assert truth["total_trays"] == sum(b["trays"] for b in bins)
    assert [b["bin_id"] for b in bins] == list(range(1, len(bins) + 1))
    lo, hi = scenario.spec.trays_per_bin
    for b in bins[:-1]:  # the last bin may be partly filled when the scenario ends
        assert lo <= b["trays"] <= hi
    for prev, nxt in zip(bins, bins[1:], strict=False):
        assert prev["start_t"] < prev["end_t"] == nxt["start_t"]
    assert bins[-1]["end_t"] <= scenario.duration_s
    frames = list(run.frames())
    times = np.array([f.t for f in frames])
    assert np.all(np.diff(times) > 0)
    for start, end in run.outages:
        assert not np.any((times >= start) & (times < end))
    expected = round(scenario.duration_s * scenario.spec.fps) - sum(
        int(np.ceil((e - s) * scenario.spec.fps)) for s, e in run.outages)
    assert abs(len(frames) - expected) <= 2 * len(run.outages)
    w, h = scenario.spec.frame_size
    boxes = np.concatenate([f.boxes for f in frames])
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    assert np.all((centres >= -20) & (centres <= [w + 20, h + 20]))


def test_without_errors_the_detections_are_the_visible_trays() -> None:
    perfect = ErrorModel(miss_rate=0.0, hard_tray_share=0.0, partial_miss_rate=0.0, fp_per_min=0.0,
                         low_fp_per_frame=0.0, jitter=0.0)
    spec = replace(preset("line-1"), occlusions_per_min=0.0, placement_hand_s=(0.0, 0.0), outages=0)
    scenario = Scenario(spec, duration_s=600.0, error_model=perfect, seed=2)
    run = ScenarioRun(scenario)
    result = run_scenario(scenario)
    assert result.counters["robust"].total == run.truth["total_trays"]
    assert result.exact_percent("robust") == 100.0
    # Frame by frame, the count is the number of trays placed in the top bin (outside the slides).
    for f in run.frames():
        current = [b for b in run.bins if b.slide_end <= f.t < b.end_t]
        if current:
            assert len(f.scores) == int(np.sum(current[0].placements <= f.t))


def test_error_model_miss_rate_and_run_length_are_what_they_say() -> None:
    model = ErrorModel(miss_rate=0.1, miss_run_frames=3.0, hard_tray_share=0.0, low_score_share=0.0,
                       fp_per_min=0.0, low_fp_per_frame=0.0, jitter=0.0)
    sim = TrayDetectorSim(model, np.random.default_rng(0), 10.0, (0, 0, 100, 100), (200, 200))
    n = 20
    boxes = np.array([[10.0 * i, 10.0, 10.0 * i + 8, 18.0] for i in range(n)])
    partial = np.zeros(n, dtype=bool)
    missed = np.ones((3000, n), dtype=bool)
    for f in range(len(missed)):
        found = sim.detect([(1, np.arange(n), boxes, partial)])[0]
        missed[f, np.round(found[:, 0] / 10).astype(int)] = False
    assert 0.085 < missed.mean() < 0.115
    # Misses come in runs of mean length `miss_run_frames` (not independent per frame).
    starts = np.sum(missed[1:] & ~missed[:-1]) + np.sum(missed[0])
    assert 2.6 < missed.sum() / starts < 3.4


def test_exact_bins_alignment() -> None:
    truth = [{"start_t": 0, "end_t": 100, "trays": 10}, {"start_t": 100, "end_t": 200, "trays": 12},
             {"start_t": 200, "end_t": 300, "trays": 9}]
    assert exact_bins(truth, [(0, 101, 10), (101, 202, 12), (202, 300, 9)]) == 3
    assert exact_bins(truth, [(0, 101, 10), (101, 150, 6), (150, 202, 6), (202, 300, 9)]) == 2  # split
    assert exact_bins(truth, [(0, 101, 10), (101, 300, 12)]) == 1  # merged: matches bin 2 only
    assert exact_bins(truth, [(0, 101, 11), (101, 202, 12), (202, 300, 9)]) == 2
    assert exact_bins(truth, []) == 0


def test_bench_counting_short_prints_both_counters_and_plots(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    plot = tmp_path / "count.png"
    counting(short=True, plot=plot)
    out = capsys.readouterr().out
    assert "robust: total error" in out and "plain: total error" in out
    for line in LINE_PRESETS:
        assert line in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

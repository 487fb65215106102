"""`edge-app sim generate`: determinism, truth consistency, Ground Truth manifest format, CLI errors.

Short clips at small resolution keep this fast: two bins of 3-5 trays at 320x180.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from sim.generate import GenerateParams, generate

W, H = 320, 180
SAMPLE_EVERY = 7


def _params(out: Path, seed: int = 3, **kw) -> GenerateParams:
    base = dict(out=out, line="line-1", seed=seed, fps=15.0, width=W, height=H, bins=2, min_trays=3, max_trays=5,
                fill_rate=1.6, occlusion_rate=0.5, sample_every=SAMPLE_EVERY)
    base.update(kw)
    return GenerateParams(**base)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("simvideo")
    out = {"a": root / "a", "b": root / "b", "other_seed": root / "c", "no_video": root / "d"}
    generate(_params(out["a"]))
    generate(_params(out["b"]))
    generate(_params(out["other_seed"], seed=4))
    generate(_params(out["no_video"], video=False))
    return out


def _decode(video: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames


def _boxes(d: Path) -> list[dict]:
    return [json.loads(line) for line in (d / "boxes.jsonl").read_text().splitlines()]


# -- determinism ----------------------------------------------------------------------------------------------------
def test_same_seed_gives_identical_outputs(runs: dict[str, Path]) -> None:
    a, b = runs["a"], runs["b"]
    for name in ("truth.json", "boxes.jsonl", "output.manifest", "video.mp4"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    fa, fb = _decode(a / "video.mp4"), _decode(b / "video.mp4")
    assert len(fa) == len(fb) > 0
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb, strict=True))
    names = sorted(p.name for p in (a / "frames").iterdir())
    assert names == sorted(p.name for p in (b / "frames").iterdir())
    assert all((a / "frames" / n).read_bytes() == (b / "frames" / n).read_bytes() for n in names)


def test_different_seed_differs(runs: dict[str, Path]) -> None:
    a, c = runs["a"], runs["other_seed"]
    assert (a / "boxes.jsonl").read_bytes() != (c / "boxes.jsonl").read_bytes()
    fa, fc = _decode(a / "video.mp4"), _decode(c / "video.mp4")
    assert not np.array_equal(fa[len(fa) // 2], fc[len(fa) // 2])


def test_no_video_renders_the_same_samples_and_truth(runs: dict[str, Path]) -> None:
    a, d = runs["a"], runs["no_video"]
    assert not (d / "video.mp4").exists()
    for name in ("boxes.jsonl", "output.manifest"):
        assert (a / name).read_bytes() == (d / name).read_bytes(), name
    names = sorted(p.name for p in (a / "frames").iterdir())
    assert all((a / "frames" / n).read_bytes() == (d / "frames" / n).read_bytes() for n in names)


# -- truth consistency ----------------------------------------------------------------------------------------------
def test_video_matches_truth_header(runs: dict[str, Path]) -> None:
    d = runs["a"]
    truth = json.loads((d / "truth.json").read_text())
    frames = _decode(d / "video.mp4")
    assert truth["frames"] == len(frames) == len(_boxes(d))
    assert frames[0].shape == (H, W, 3)
    assert (truth["line"], truth["seed"], truth["fps"], truth["width"], truth["height"]) == ("line-1", 3, 15, W, H)


def test_boxes_inside_frame_and_ids_consistent(runs: dict[str, Path]) -> None:
    records = _boxes(runs["a"])
    seen_bin: dict[int, int] = {}
    for i, rec in enumerate(records):
        assert rec["frame"] == i and rec["t"] == pytest.approx(i / 15.0)
        for tr in rec["trays"]:
            x1, y1, x2, y2 = tr["box"]
            assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H, tr
            assert 0 < tr["visible"] <= 1.0
            assert seen_bin.setdefault(tr["tray_id"], tr["bin_id"]) == tr["bin_id"], "a tray changed bins"


def test_bin_counts_match_rendered_trays(runs: dict[str, Path]) -> None:
    d = runs["a"]
    truth = json.loads((d / "truth.json").read_text())
    records = _boxes(d)
    distinct: dict[int, set[int]] = defaultdict(set)
    max_simultaneous: dict[int, int] = defaultdict(int)
    first_t: dict[int, float] = {}
    last_t: dict[int, float] = {}
    for rec in records:
        per_bin: dict[int, int] = defaultdict(int)
        for tr in rec["trays"]:
            distinct[tr["bin_id"]].add(tr["tray_id"])
            per_bin[tr["bin_id"]] += 1
            first_t.setdefault(tr["bin_id"], rec["t"])
            last_t[tr["bin_id"]] = rec["t"]
        for b, n in per_bin.items():
            max_simultaneous[b] = max(max_simultaneous[b], n)
    bins = truth["bins"]
    assert len(bins) == 2 and all(b["complete"] for b in bins)
    assert {b["bin_id"] for b in bins} == set(distinct)
    for b in bins:
        assert 3 <= b["trays"] <= 5
        assert len(distinct[b["bin_id"]]) == b["trays"]
        assert max_simultaneous[b["bin_id"]] == b["trays"]
        assert b["start_t"] <= first_t[b["bin_id"]]
        assert last_t[b["bin_id"]] < b["end_t"]  # hidden once the next bin has slid over it
        assert b["start_t"] < b["filled_t"] < b["end_t"]
    assert truth["total_trays"] == sum(b["trays"] for b in bins)
    assert bins[0]["end_t"] <= bins[1]["end_t"]


def test_boxes_are_where_trays_are_rendered(runs: dict[str, Path]) -> None:
    """Pixels inside each fully visible tray's box changed since the empty bin of frame 0; the background did not."""
    d = runs["a"]
    truth = json.loads((d / "truth.json").read_text())
    first = truth["bins"][0]
    records = _boxes(d)
    full = [r for r in records if first["filled_t"] < r["t"] < truth["bins"][1]["start_t"]
            and len(r["trays"]) == first["trays"] and all(t["visible"] == 1.0 for t in r["trays"])]
    assert full, "no frame shows the full first bin without occlusion"
    assert records[0]["trays"] == []
    frames = _decode(d / "video.mp4")
    empty, filled = frames[0].astype(np.float32), frames[full[-1]["frame"]].astype(np.float32)
    diffs = []
    for tr in full[-1]["trays"]:
        x1, y1, x2, y2 = tr["box"]
        cx, cy, hw, hh = (x1 + x2) // 2, (y1 + y2) // 2, (x2 - x1) // 4, (y2 - y1) // 4
        diffs.append(np.abs(filled - empty)[cy - hh:cy + hh, cx - hw:cx + hw].mean())
    corners = [np.abs(filled - empty)[ys, xs].mean() for ys in (slice(0, 12), slice(H - 12, H))
               for xs in (slice(0, 12), slice(W - 12, W))]
    assert min(diffs) > 2 * max(corners) + 3, (diffs, corners)


def test_covering_bin_hides_trays_gradually(runs: dict[str, Path]) -> None:
    """While the next bin slides in, the full bin's trays lose visibility before they disappear."""
    d = runs["a"]
    truth = json.loads((d / "truth.json").read_text())
    first = truth["bins"][0]
    cover_start = truth["bins"][1]["start_t"]
    partial = [tr["visible"] for rec in _boxes(d) if cover_start <= rec["t"] < first["end_t"]
               for tr in rec["trays"] if tr["bin_id"] == first["bin_id"]]
    assert partial and min(partial) < 0.5 < max(partial)


# -- Ground Truth output manifest, read back independently ----------------------------------------------------------
def _read_gt_manifest(path: Path) -> list[dict]:
    """A plain reader of SageMaker Ground Truth bounding-box output manifests (no project code)."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        rec = json.loads(line)
        label_keys = [k for k in rec if k != "source-ref" and not k.endswith("-metadata")]
        assert len(label_keys) == 1, f"line {n}: expected exactly one label attribute, got {label_keys}"
        label = label_keys[0]
        assert set(rec) == {"source-ref", label, f"{label}-metadata"}
        body, meta = rec[label], rec[f"{label}-metadata"]
        assert set(body) == {"image_size", "annotations"}
        assert set(meta) == {"objects", "class-map", "type", "human-annotated", "creation-date", "job-name"}
        assert meta["type"] == "groundtruth/object-detection"
        assert meta["human-annotated"] in ("yes", "no")
        datetime.strptime(meta["creation-date"], "%Y-%m-%dT%H:%M:%S.%f")
        assert meta["job-name"].startswith("labeling-job/")
        (size,) = body["image_size"]
        assert set(size) == {"width", "height", "depth"} and size["depth"] == 3
        assert len(meta["objects"]) == len(body["annotations"])
        assert all(set(o) == {"confidence"} and 0 <= o["confidence"] <= 1 for o in meta["objects"])
        boxes = []
        for a in body["annotations"]:
            assert set(a) == {"class_id", "left", "top", "width", "height"}
            assert all(isinstance(a[k], int) for k in a)
            assert str(a["class_id"]) in meta["class-map"]
            assert a["width"] > 0 and a["height"] > 0
            assert a["left"] >= 0 and a["top"] >= 0
            assert a["left"] + a["width"] <= size["width"] and a["top"] + a["height"] <= size["height"]
            boxes.append((a["left"], a["top"], a["left"] + a["width"], a["top"] + a["height"]))
        image = (path.parent / rec["source-ref"]).resolve()
        rows.append({"image": image, "size": (size["width"], size["height"]), "boxes": boxes,
                     "classes": meta["class-map"], "job": meta["job-name"]})
    return rows


def test_manifest_is_ground_truth_output_format(runs: dict[str, Path]) -> None:
    d = runs["a"]
    rows = _read_gt_manifest(d / "output.manifest")
    truth = json.loads((d / "truth.json").read_text())
    records = _boxes(d)
    assert len(rows) == len(range(0, truth["frames"], SAMPLE_EVERY))
    assert sum(len(r["boxes"]) for r in rows) > 0
    for r in rows:
        img = cv2.imread(str(r["image"]))
        assert img is not None and (img.shape[1], img.shape[0]) == r["size"] == (W, H)
        assert r["classes"] == {"0": "tray"} and r["job"] == "labeling-job/sim-line-1"
        frame = int(r["image"].stem.rsplit("-", 1)[1])
        assert r["image"].name == f"line-1-s3-{frame:06d}.jpg"
        expected = sorted(tuple(t["box"]) for t in records[frame]["trays"] if t["visible"] >= 0.5)
        assert sorted(r["boxes"]) == expected


def test_rerun_into_same_folder_never_mixes_runs(tmp_path: Path) -> None:
    out = tmp_path / "o"
    tiny = dict(width=160, height=90, bins=None, duration=2.0, min_trays=None, max_trays=None, sample_every=10)
    generate(_params(out, **tiny))
    assert (out / "video.mp4").exists() and len(list((out / "frames").iterdir())) == 3
    generate(_params(out, **{**tiny, "video": False, "sample_every": 0}))
    assert not (out / "video.mp4").exists() and not (out / "frames").exists()
    assert not (out / "output.manifest").exists() and (out / "boxes.jsonl").exists()
    generate(_params(out, **{**tiny, "sample_every": 15}))
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["line-1-s3-000000.jpg", "line-1-s3-000015.jpg"]
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temporary files left


# -- command line ---------------------------------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_app.cli", "sim", "generate", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("bad", [["--line", "line-9"], ["--fps", "0"], ["--min-trays", "5", "--max-trays", "3"],
                                 ["--width", "321"], ["--occlusion-rate", "1.5"], ["--duration", "5", "--bins", "2"]])
def test_cli_bad_argument_is_one_line_error(tmp_path: Path, bad: list[str]) -> None:
    r = _cli("--out", str(tmp_path / "o"), *bad)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: sim generate: "), r.stderr
    assert "Traceback" not in r.stderr


def test_cli_writes_outputs(tmp_path: Path) -> None:
    out = tmp_path / "o"
    r = _cli("--out", str(out), "--line", "line-5", "--width", "160", "--height", "90", "--duration", "3",
             "--sample-every", "20", "--benchmark")
    assert r.returncode == 0, r.stderr
    assert "benchmark:" in r.stdout
    assert len(_decode(out / "video.mp4")) == 45
    assert sorted(p.name for p in (out / "frames").iterdir()) == [f"line-5-s1-{i:06d}.jpg" for i in (0, 20, 40)]
    assert len(_read_gt_manifest(out / "output.manifest")) == 3

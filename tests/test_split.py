"""Split by packaging line: groups never straddle splits, split.json is written, leakage is detected."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_app.errors import EdgeAppError
from training.manifest import read_manifests
from training.split import assign_groups, find_leaks, group_of, split_entries

EXE = str(Path(sys.executable).with_name("edge-app"))


def _make_lines(root: Path, lines: dict[str, int]) -> Path:
    """Tiny real JPEGs for several lines plus one GT manifest referencing them (source-ref relative)."""
    rng = np.random.default_rng(0)
    (root / "frames").mkdir(parents=True)
    records = []
    for line, n in lines.items():
        for i in range(n):
            img = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
            name = f"frames/{line}-{i:03d}.jpg"
            cv2.imwrite(str(root / name), img)
            records.append({"source-ref": name, "bounding-box": {
                "image_size": [{"width": 32, "height": 24, "depth": 3}],
                "annotations": [{"class_id": 0, "left": 2, "top": 3, "width": 10, "height": 8}]},
                "bounding-box-metadata": {"type": "groundtruth/object-detection", "class-map": {"0": "tray"},
                                          "line": line}})
    path = root / "output.manifest"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_group_from_regex_or_metadata(tmp_path: Path) -> None:
    report = read_manifests([_make_lines(tmp_path, {"line-1": 2, "line-12": 1})])
    assert [group_of(e, pattern=r"(line-\d+)") for e in report.entries] == ["line-1", "line-1", "line-12"]
    assert [group_of(e, key="line") for e in report.entries] == ["line-1", "line-1", "line-12"]
    with pytest.raises(EdgeAppError, match="no group"):
        group_of(report.entries[0], pattern=r"(cam-\d+)")


def test_assignment_keeps_whole_lines_together_and_is_seeded() -> None:
    groups = [f"line-{i}" for i in range(1, 6)]
    a = assign_groups(groups, seed=3)
    assert a == assign_groups(groups, seed=3)
    assert sorted(a) == groups and set(a.values()) == {"train", "val", "test"}
    explicit = assign_groups(groups, val=["line-4"], test=["line-5"])
    assert explicit == {"line-1": "train", "line-2": "train", "line-3": "train", "line-4": "val", "line-5": "test"}
    with pytest.raises(EdgeAppError, match="not found"):
        assign_groups(groups, test=["line-9"])


def test_split_has_no_leak_and_leak_detector_fails_on_leaks(tmp_path: Path) -> None:
    report = read_manifests([_make_lines(tmp_path, {"line-1": 3, "line-2": 2, "line-3": 2})])
    assignment = assign_groups(["line-1", "line-2", "line-3"], val=["line-2"], test=["line-3"])
    parts, record = split_entries(report.entries, assignment, pattern=r"(line-\d+)")
    assert find_leaks(record) == []
    assert {len(v) for v in parts.values()} == {3, 2}
    for name, entries in parts.items():
        assert {group_of(e, pattern=r"(line-\d+)") for e in entries} == set(record["groups"][name])

    same_group = json.loads(json.dumps(record))
    same_group["groups"]["test"].append("line-1")
    assert any("group 'line-1'" in p for p in find_leaks(same_group))

    same_path = json.loads(json.dumps(record))
    same_path["images"]["val"].append(record["images"]["train"][0])
    assert any("is in both train and val" in p for p in find_leaks(same_path))

    # a copy of a training frame under another name in the test split: caught by its bytes
    copy = tmp_path / "frames" / "line-3-copy.jpg"
    copy.write_bytes(Path(record["images"]["train"][0]).read_bytes())
    same_bytes = json.loads(json.dumps(record))
    same_bytes["images"]["test"].append(str(copy))
    assert any("same bytes" in p for p in find_leaks(same_bytes))


def test_cli_split_writes_lsts_and_split_json_and_check_split(tmp_path: Path) -> None:
    manifest = _make_lines(tmp_path / "data", {"line-1": 3, "line-2": 2, "line-3": 2})
    out = tmp_path / "split"
    res = subprocess.run([EXE, "dataset", "split", str(manifest), "--out", str(out), "--group-regex", r"(line-\d+)",
                          "--val", "line-2", "--test", "line-3"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    split = json.loads((out / "split.json").read_text())
    assert split["groups"] == {"train": ["line-1"], "val": ["line-2"], "test": ["line-3"]}
    assert [len((out / f"{s}.lst").read_text().splitlines()) for s in ("train", "val", "test")] == [3, 2, 2]
    ok = subprocess.run([EXE, "dataset", "check-split", str(out / "split.json")], capture_output=True, text=True)
    assert ok.returncode == 0 and "no leakage" in ok.stdout
    split["groups"]["val"].append("line-1")
    (out / "split.json").write_text(json.dumps(split))
    bad = subprocess.run([EXE, "dataset", "check-split", str(out / "split.json")], capture_output=True, text=True)
    assert bad.returncode == 2 and "leak" in bad.stderr

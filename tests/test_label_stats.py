"""Label statistics on the real Ground Truth manifests in /work/shared/fixtures/gt (and a sim manifest)."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from sim.manifest import manifest_line
from training.label_stats import compute, plot, print_tables, write_json
from training.manifest import read_manifests

GT = Path("/work/shared/fixtures/gt")
needs_fixtures = pytest.mark.skipif(not GT.is_dir(), reason="shared GT fixtures not present")


@needs_fixtures
def test_cat_manifest_counts_negatives_sizes_and_days(tmp_path: Path) -> None:
    report = read_manifests([GT / "t04glovern__aws-ground-truth-cat-labels__output.manifest"])
    stats = compute(report)
    lines = (GT / "t04glovern__aws-ground-truth-cat-labels__output.manifest").read_text().splitlines()
    expected_boxes = sum(len(json.loads(li)["cat-ground-truth"]["annotations"]) for li in lines)
    d = stats.to_dict()
    assert d["images"] == len(lines) == 4 and d["boxes"] == expected_boxes
    assert d["negatives"] == 1 and d["boxes_per_image"]["0"] == 1
    assert d["per_class"] == {"Cat": expected_boxes}
    assert d["image_sizes"] == {"601x453": 4}
    assert d["per_day"] == {"2019-01-29": {"images": 4, "boxes": expected_boxes}}
    assert d["per_line"] == {"(unknown)": {"images": 4, "boxes": expected_boxes}}
    png = plot(stats, tmp_path / "stats.png")
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_fixtures
def test_chained_job_uses_adjusted_labels_and_counts_per_class() -> None:
    path = GT / "YeongJun-Jeon__1to100_Korean__output.manifest"
    report = read_manifests([path])
    stats = compute(report)
    chain = "suneung-korean-layout-detection-v2-chain"
    records = [json.loads(li) for li in path.read_text(encoding="utf-8").splitlines()]
    expected = Counter(report.class_names[a["class_id"]] for r in records for a in r[chain]["annotations"])
    assert stats.per_class == expected and stats.boxes == sum(len(r[chain]["annotations"]) for r in records)
    assert stats.to_dict()["image_sizes"] == {"3509x4963": 3}


@needs_fixtures
def test_all_bounding_box_fixtures_table_and_json(tmp_path: Path) -> None:
    for path in sorted(GT.glob("*.manifest")):
        report = read_manifests([path], skip_bad=True)  # the video-tracking fixture is skipped, not a crash
        stats = compute(report)
        buffer = io.StringIO()
        print_tables(stats, Console(file=buffer, width=120))
        text = buffer.getvalue()
        assert "Boxes per class" in text and "Per day" in text
        assert stats.boxes == report.num_boxes and stats.images == len(report.entries)
        write_json(stats, tmp_path / f"{path.stem}.json")
        assert json.loads((tmp_path / f"{path.stem}.json").read_text())["boxes"] == report.num_boxes


def test_per_line_from_the_image_path(tmp_path: Path) -> None:
    text = "".join(manifest_line(f"frames/{line}-s1-{i:06d}.jpg", 640, 360, [(0, 0, 10 + i, 20)] * (i % 3),
                                 line, seed, 3600.0 * 9 * i)
                   for line, seed in (("line-1", 1), ("line-2", 2)) for i in range(4))
    (tmp_path / "output.manifest").write_text(text)
    stats = compute(read_manifests([tmp_path / "output.manifest"]))
    d = stats.to_dict()
    assert d["per_line"] == {"line-1": {"images": 4, "boxes": 3}, "line-2": {"images": 4, "boxes": 3}}
    # labels 9 h apart from 08:00 on day 1 + seed (sim.manifest.creation_date)
    assert d["per_day"] == {"2026-01-02": {"images": 2, "boxes": 1}, "2026-01-03": {"images": 4, "boxes": 3},
                            "2026-01-04": {"images": 2, "boxes": 2}}
    assert d["boxes_per_image"] == {"0": 4, "1": 2, "2": 2}

"""Ground Truth manifest reading on the real fixtures in /work/shared/fixtures/gt and crafted edge cases."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from edge_app.errors import EdgeAppError
from training.manifest import read_manifests

GT = Path("/work/shared/fixtures/gt")
CATS = GT / "t04glovern__aws-ground-truth-cat-labels__output.manifest"
LOGOS = GT / "dannymorris__gluoncv-logo-detection__output.manifest"
KOREAN = GT / "YeongJun-Jeon__1to100_Korean__output.manifest"
BEES = GT / "nishantkarve__ObjectDetection__train.manifest"
VIDEO = GT / "iprivit__object-tracking-project__output.manifest"

pytestmark = pytest.mark.skipif(not GT.is_dir(), reason="shared fixtures not present")


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_cats_2019_format_counts_negative_and_boxes() -> None:
    report = read_manifests([CATS])
    raw = _lines(CATS)
    assert len(report.entries) == len(raw) == 4
    assert report.negatives == 1  # line 1 has "annotations": []
    assert report.entries[0].is_negative
    assert report.label_attributes == {"cat-ground-truth"}
    assert report.ordered_class_names() == ["Cat"]
    ann = raw[1]["cat-ground-truth"]["annotations"][0]
    box = report.entries[1].boxes[0]
    assert (box.xmin, box.ymin, box.xmax, box.ymax) == (ann["left"], ann["top"], ann["left"] + ann["width"],
                                                        ann["top"] + ann["height"])
    assert report.num_boxes == sum(len(r["cat-ground-truth"]["annotations"]) for r in raw)


def test_logos_space_in_s3_key_and_empty_last_line() -> None:
    report = read_manifests([LOGOS])
    assert len(report.entries) == 13
    assert report.entries[11].source_ref.endswith("gray_images/130919 bluecross09.jpg")
    assert report.entries[12].is_negative and report.negatives == 1
    assert max(len(e.boxes) for e in report.entries) == 7
    assert all(e.width > 0 and e.height > 0 for e in report.entries)


def test_chained_adjustment_job_uses_newest_attribute_unless_told() -> None:
    auto = read_manifests([KOREAN])
    assert auto.label_attributes == {"suneung-korean-layout-detection-v2-chain"}
    assert "figure" in auto.ordered_class_names()  # only the chain's class-map lists class 4
    assert "국어" in auto.entries[0].source_ref  # raw UTF-8 key survives
    raw = _lines(KOREAN)
    assert [len(e.boxes) for e in auto.entries] == [
        len(r["suneung-korean-layout-detection-v2-chain"]["annotations"]) for r in raw]
    original = read_manifests([KOREAN], label_attributes=["suneung-korean-layout-detection-v2"])
    assert original.label_attributes == {"suneung-korean-layout-detection-v2"}
    assert [len(e.boxes) for e in original.entries] == [
        len(r["suneung-korean-layout-detection-v2"]["annotations"]) for r in raw]
    assert (auto.entries[0].width, auto.entries[0].height) == (3509, 4963)


def test_json_dumps_rewritten_split() -> None:
    report = read_manifests([BEES])
    assert len(report.entries) == 11 and report.negatives == 1
    assert report.ordered_class_names() == ["bee"]


def test_video_tracking_record_is_rejected_cleanly() -> None:
    with pytest.raises(EdgeAppError, match=r"output\.manifest:1: not a bounding-box record: .*video-object-tracking"):
        read_manifests([VIDEO])
    report = read_manifests([VIDEO], skip_bad=True)
    assert report.entries == [] and len(report.bad_lines) == 1


def test_every_fixture_reads_or_fails_cleanly_and_conflicting_class_maps_are_an_error() -> None:
    counts = {}
    for path in sorted(GT.glob("*.manifest")):
        report = read_manifests([path], skip_bad=True)
        counts[path.name.split("__")[0]] = (len(report.entries), len(report.bad_lines))
    assert counts == {"YeongJun-Jeon": (3, 0), "dannymorris": (13, 0), "iprivit": (0, 1),
                      "nishantkarve": (11, 0), "t04glovern": (4, 0)}
    # class 0 is 'BCBS' in one job and 'Cat' in the other: merging them silently would mislabel
    with pytest.raises(EdgeAppError, match="class 0 is 'Cat' here but 'BCBS'"):
        read_manifests([LOGOS, CATS])


def _record(attr: str = "bounding-box", anns: list | None = None, w: int = 100, h: int = 80, **extra) -> dict:
    rec = {"source-ref": "frames/a.jpg",
           attr: {"image_size": [{"width": w, "height": h, "depth": 3}], "annotations": anns or []},
           f"{attr}-metadata": {"type": "groundtruth/object-detection", "class-map": {"0": "tray"},
                                "creation-date": "2026-01-01T00:00:00"}}
    rec.update(extra)
    return rec


def test_broken_line_names_the_line_and_skip_bad_continues(tmp_path: Path) -> None:
    path = tmp_path / "out.manifest"
    path.write_text(json.dumps(_record()) + "\n" + '{"source-ref": "x.jpg", "bounding-box": {' + "\n"
                    + json.dumps(_record()) + "\n", encoding="utf-8")
    with pytest.raises(EdgeAppError, match=r"out\.manifest:2: not valid JSON"):
        read_manifests([path])
    report = read_manifests([path], skip_bad=True)
    assert len(report.entries) == 2 and len(report.bad_lines) == 1 and ":2:" in report.bad_lines[0]


def test_boxes_clipped_and_degenerate_dropped_with_warning(tmp_path: Path, caplog) -> None:
    anns = [{"class_id": 0, "left": -10, "top": 5, "width": 30, "height": 20},   # clipped at x=0
            {"class_id": 0, "left": 99.5, "top": 10, "width": 20, "height": 20},  # 0.5 px wide after clip
            {"class_id": 0, "left": 10, "top": 10, "width": 0, "height": 20}]     # zero width
    path = tmp_path / "m.manifest"
    path.write_text(json.dumps(_record(anns=anns)) + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        report = read_manifests([path])
    (entry,) = report.entries
    assert [(b.xmin, b.ymin, b.xmax, b.ymax) for b in entry.boxes] == [(0.0, 5.0, 20.0, 25.0)]
    assert report.clipped_boxes == 1 and len(report.dropped_boxes) == 2
    assert all("m.manifest:1" in m for m in report.dropped_boxes)
    assert "m.manifest:1: annotations[1]" in caplog.text


def test_failure_reason_kept_as_negative_and_counted(tmp_path: Path) -> None:
    failed = {"source-ref": "s3://b/img 2.jpg",
              "bounding-box-metadata": {"failure-reason": "ClientError: worker timeout",
                                        "type": "groundtruth/object-detection"},
              "other": {"image_size": [{"width": 64, "height": 48}]}}
    path = tmp_path / "stream.manifest"
    path.write_text(json.dumps(_record(anns=[{"class_id": 0, "left": 1, "top": 1, "width": 9, "height": 9}]))
                    + "\n" + json.dumps(failed) + "\n", encoding="utf-8")
    report = read_manifests([path])
    assert report.failures == 1 and report.negatives == 1 and len(report.entries) == 2
    assert report.entries[1].failure_reason.startswith("ClientError")
    assert report.entries[1].is_negative
    dropped = read_manifests([path], drop_failed=True)
    assert len(dropped.entries) == 1 and dropped.dropped_failures == 1


def test_streaming_folder_and_relative_refs(tmp_path: Path) -> None:
    (tmp_path / "manifests" / "intermediate" / "1").mkdir(parents=True)
    (tmp_path / "manifests" / "intermediate" / "1" / "output.manifest").write_text(
        json.dumps(_record()) + "\n", encoding="utf-8")
    (tmp_path / "manifests" / "output.manifest").write_text(json.dumps(_record()) + "\n", encoding="utf-8")
    report = read_manifests([tmp_path / "manifests"])
    assert len(report.entries) == 2
    assert report.entries[0].source_ref == str(tmp_path / "manifests" / "intermediate" / "1" / "frames" / "a.jpg")


def test_label_attribute_given_but_missing(tmp_path: Path) -> None:
    path = tmp_path / "m.manifest"
    path.write_text(json.dumps(_record()) + "\n", encoding="utf-8")
    with pytest.raises(EdgeAppError, match="label attribute nope not found"):
        read_manifests([path], label_attributes=["nope"])


def test_s3_manifest_through_cache_with_moto(tmp_path: Path, monkeypatch) -> None:
    moto = pytest.importorskip("moto")
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with moto.mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="gt-out")
        s3.put_object(Bucket="gt-out", Key="job/manifests/output/output.manifest", Body=CATS.read_bytes())
        uri = "s3://gt-out/job/manifests/output/output.manifest"
        report = read_manifests([uri], cache_dir=tmp_path / "cache")
        assert len(report.entries) == 4
        cached = tmp_path / "cache" / "gt-out" / "job/manifests/output/output.manifest"
        assert cached.read_bytes() == CATS.read_bytes()
        # changed object -> new ETag -> re-downloaded
        s3.put_object(Bucket="gt-out", Key="job/manifests/output/output.manifest",
                      Body=b"\n".join(CATS.read_bytes().splitlines()[:2]) + b"\n")
        assert len(read_manifests([uri], cache_dir=tmp_path / "cache").entries) == 2
        with pytest.raises(EdgeAppError, match="cannot read from S3"):
            read_manifests(["s3://gt-out/missing.manifest"], cache_dir=tmp_path / "cache")


def test_cli_inspect_and_error_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("edge-app")
    ok = subprocess.run([str(exe), "dataset", "inspect", str(CATS)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout.strip().splitlines()[-1])["images"] == 4
    bad = subprocess.run([str(exe), "dataset", "inspect", str(VIDEO)], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr

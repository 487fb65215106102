"""LST writing/reading: round trip through GluonCV's own readers on real small images; both fixture layouts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_app.errors import EdgeAppError
from training.lst import parse_line, read_lst, write_lst
from training.manifest import read_manifests

LST = Path("/work/shared/fixtures/lst")
GT = Path("/work/shared/fixtures/gt")
EXE = str(Path(sys.executable).with_name("edge-app"))


def _dataset(root: Path) -> Path:
    """Real JPEGs of different sizes (one with a space in its name), boxes incl. a negative image."""
    rng = np.random.default_rng(1)
    (root / "img dir").mkdir(parents=True)
    specs = [("a.jpg", 64, 48, [(0, 5, 6, 20, 18), (1, 30, 10, 25, 30)]),
             ("b c.jpg", 40, 72, [(1, 0, 0, 40, 72)]),
             ("neg.jpg", 50, 50, [])]
    records = []
    for name, w, h, boxes in specs:
        cv2.imwrite(str(root / "img dir" / name), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        records.append({"source-ref": f"img dir/{name}", "job": {
            "image_size": [{"width": w, "height": h, "depth": 3}],
            "annotations": [{"class_id": c, "left": x, "top": y, "width": bw, "height": bh}
                            for c, x, y, bw, bh in boxes]},
            "job-metadata": {"type": "groundtruth/object-detection", "class-map": {"0": "tray", "1": "lid"}}})
    path = root / "output.manifest"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_round_trip_through_gluoncv_lstdetection(tmp_path: Path) -> None:
    from gluoncv.data import LstDetection

    report = read_manifests([_dataset(tmp_path)])
    out = tmp_path / "lists" / "train.lst"
    assert write_lst(report.entries, out) == 3
    dataset = LstDetection(str(out), root=str(out.parent))
    assert len(dataset) == 3
    for i, entry in enumerate(report.entries):
        img, label = dataset[i]
        assert img.shape == (entry.height, entry.width, 3)  # the image GluonCV opened is the one we meant
        real = label[label[:, 4] >= 0]
        expected = np.array([[b.xmin, b.ymin, b.xmax, b.ymax, b.class_id] for b in entry.boxes]).reshape(-1, 5)
        np.testing.assert_allclose(real, expected, atol=1e-3)
    # the negative image carries only the class -1 placeholder GluonCV treats as padding
    _, neg_label = dataset[2]
    assert (neg_label[:, 4] < 0).all()
    # our own reader gives the same boxes (normalised) and drops the placeholder
    recs = read_lst(out)
    assert [len(r.boxes) for r in recs] == [2, 1, 0]
    assert recs[1].path == "../img dir/b c.jpg" and (recs[1].width, recs[1].height) == (40, 72)


def test_im2rec_packing_and_gluoncv_record_reader(tmp_path: Path) -> None:
    """Pack our LST the way im2rec does (label = all numeric fields) and read it with RecordFileDetection."""
    import mxnet as mx
    from gluoncv.data import RecordFileDetection

    report = read_manifests([_dataset(tmp_path)])
    out = tmp_path / "train.lst"
    write_lst(report.entries, out)
    prefix = str(tmp_path / "train")
    record = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "w")
    for line in out.read_text(encoding="utf-8").splitlines():  # im2rec.read_list + image_encode
        fields = [f.strip() for f in line.strip().split("\t")]
        index, label = int(fields[0]), np.array([float(v) for v in fields[1:-1]], np.float32)
        header = mx.recordio.IRHeader(0, label, index, 0)
        record.write_idx(index, mx.recordio.pack(header, (tmp_path / fields[-1]).read_bytes()))
    record.close()
    rec_dataset = RecordFileDetection(prefix + ".rec")
    img, label = rec_dataset[0]
    assert img.shape == (48, 64, 3)
    np.testing.assert_allclose(label[:2, :4], [[5, 6, 25, 24], [30, 10, 55, 40]], atol=1e-3)


def test_reads_gluoncv_tutorial_layout_header4_width5() -> None:
    recs = read_lst(LST / "dmlc__gluon-cv__val.lst")
    raw = (LST / "dmlc__gluon-cv__val.lst").read_text().splitlines()
    assert len(recs) == len(raw)
    first = raw[1].split("\t")
    assert (recs[1].width, recs[1].height, recs[1].path) == (512, 512, first[-1])
    np.testing.assert_allclose(recs[1].boxes[0], [float(v) for v in first[6:10]] + [float(first[5])], rtol=1e-6)


def test_reads_mxnet_ssd_layout_header2_width6_and_matches_gluoncv() -> None:
    from gluoncv.data.recordio.detection import _transform_label

    raw = (LST / "NCNU-OpenSource__-__train.lst").read_text().splitlines()
    recs = read_lst(LST / "NCNU-OpenSource__-__train.lst")
    assert len(recs[0].boxes) == 8 and recs[0].width is None  # header 2: no image size
    assert recs[0].path == "VOC2007/JPEGImages/008550.jpg"
    for line, rec in zip(raw, recs, strict=True):
        gluon = _transform_label(np.array([float(v) for v in line.split("\t")[1:-1]]))  # GluonCV's own parser
        np.testing.assert_allclose(rec.boxes, gluon[:, :5], rtol=1e-6)


@pytest.mark.parametrize("line, message", [
    ("0\t4\t5\t10\t10\t0\t0.1\t0.1\t0.5\timg.jpg", "do not split"),
    ("0\t4\t3\t10\t10\t0\t0.1\t0.1\timg.jpg", "label width >= 5"),
    ("0\t4\tfive\t10\t10\timg.jpg", "not a number"),
])
def test_broken_lst_lines_are_clear_errors(line: str, message: str) -> None:
    with pytest.raises(EdgeAppError, match=message):
        parse_line(line, "x.lst:1")


def test_cli_lst_offline_from_real_fixtures(tmp_path: Path) -> None:
    out = tmp_path / "fixtures.lst"
    res = subprocess.run([EXE, "dataset", "lst", str(GT / "dannymorris__gluoncv-logo-detection__output.manifest"),
                          "--out", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 13
    assert lines[11].endswith("bcbs-logo-training-images/gray_images/130919 bluecross09.jpg")
    header = lines[0].split("\t")
    assert header[1:5] == ["4", "5", "775", "1000"]
    assert json.loads(res.stdout.strip().splitlines()[-1])["negatives"] == 1

"""MXNet / GluonCV detection LST files: write from manifests, read any header layout.

One line per image, tab separated::

    index \\t A \\t B \\t [header extras...] \\t [cls xmin ymin xmax ymax (extras...)]*N \\t path

``A`` is the header length (counting A and B themselves) and ``B`` the label width per object (>= 5).
GluonCV's tutorial layout is ``A=4, B=5`` with image width and height as the two extra header fields; the
older mxnet-ssd layout is ``A=2, B=6`` (no size, a ``difficult`` flag per object). Coordinates are
normalised to [0, 1] by the image size, which is why writing needs no image: Ground Truth's ``image_size``
is enough (``edge-app dataset lst`` works offline).

Negative images (no boxes): ``gluoncv.data.LstDetection`` rejects a label shorter than header + 5 values,
so a negative is written with one placeholder object of class ``-1`` (``-1 0 0 0 0``); GluonCV treats class
-1 rows as padding (never matched to an anchor, ignored by its VOC metric), and `read_lst` drops them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_app.errors import EdgeAppError
from edge_app.fileio import atomic_write_text  # noqa: F401 - re-exported (training modules)
from training.manifest import Entry
from training.s3cache import is_s3_uri, split_s3_uri

HEADER_LEN = 4
LABEL_WIDTH = 5
NEGATIVE_PLACEHOLDER = (-1.0, 0.0, 0.0, 0.0, 0.0)


@dataclass
class LstRecord:
    """One parsed LST line. ``boxes`` is ``(N, 5)`` ``[xmin, ymin, xmax, ymax, cls]`` normalised (GluonCV order)."""

    index: int
    path: str
    boxes: np.ndarray
    width: int | None = None
    height: int | None = None


def image_path_for_lst(source_ref: str, lst_dir: Path) -> str:
    """Path written into the LST: relative to the LST's folder when possible, ``bucket/key`` for S3 refs.

    S3 images are expected under ``<root>/<bucket>/<key>``, the layout of the S3 cache, so
    ``--root <cache dir>`` finds them.
    """
    if is_s3_uri(source_ref):
        bucket, key = split_s3_uri(source_ref)
        return f"{bucket}/{key}"
    try:
        return os.path.relpath(Path(source_ref).resolve(), lst_dir.resolve())
    except ValueError:
        return str(Path(source_ref).resolve())


def format_line(index: int, entry: Entry, path: str) -> str:
    """The LST line of one entry (A=4, B=5, width, height, normalised corners)."""
    if "\t" in path or "\n" in path:
        raise EdgeAppError(f"{entry.where}: source-ref contains a tab or newline, which LST cannot hold")
    fields = [str(index), str(HEADER_LEN), str(LABEL_WIDTH), str(entry.width), str(entry.height)]
    objects = [
        (b.class_id, b.xmin / entry.width, b.ymin / entry.height, b.xmax / entry.width, b.ymax / entry.height)
        for b in entry.boxes
    ] or [NEGATIVE_PLACEHOLDER]
    for obj in objects:
        fields.append(str(int(obj[0])))
        fields.extend(f"{v:.6f}" for v in obj[1:])
    fields.append(path)
    return "\t".join(fields)


def write_lst(entries: Iterable[Entry], out: Path) -> int:
    """Write entries to ``out`` atomically; returns the number of lines."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [format_line(i, e, image_path_for_lst(e.source_ref, out.parent)) for i, e in enumerate(entries)]
    atomic_write_text(out, "".join(line + "\n" for line in lines))
    return len(lines)


def parse_line(line: str, where: str) -> LstRecord:
    """Parse one LST line honouring its header length and label width."""
    parts = line.rstrip("\n").split("\t")
    if len(parts) < 4:
        raise EdgeAppError(f"{where}: expected index, header length, label width, ..., path")
    try:
        index = int(float(parts[0]))
        values = np.array([float(v) for v in parts[1:-1]], dtype=np.float64)
    except ValueError as exc:
        raise EdgeAppError(f"{where}: not a number ({exc})") from None
    header_len, label_width = int(values[0]), int(values[1])
    if header_len < 2 or label_width < 5:
        raise EdgeAppError(f"{where}: header length must be >= 2 and label width >= 5, got {header_len}, {label_width}")
    body = values[header_len:]
    if len(values) < header_len or len(body) % label_width:
        raise EdgeAppError(f"{where}: {len(body)} label values do not split into objects of width {label_width}")
    objs = body.reshape(-1, label_width)
    objs = objs[objs[:, 0] >= 0]
    boxes = np.concatenate([objs[:, 1:5], objs[:, :1]], axis=1) if len(objs) else np.zeros((0, 5))
    width = height = None
    if header_len >= 4:
        width, height = int(values[2]), int(values[3])
    return LstRecord(index, parts[-1], boxes.astype(np.float32), width, height)


def read_lst(path: Path) -> list[LstRecord]:
    path = Path(path)
    if not path.is_file():
        raise EdgeAppError(f"{path}: LST file not found")
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            records.append(parse_line(line, f"{path}:{n}"))
    return records

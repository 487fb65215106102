"""Read SageMaker Ground Truth bounding-box output manifests (JSON Lines).

One line of a Ground Truth output manifest is one image::

    {"source-ref": "s3://bucket/img.jpg",
     "<label-attr>": {"image_size": [{"width": W, "height": H, "depth": 3}],
                      "annotations": [{"class_id": 0, "left": x, "top": y, "width": w, "height": h}, ...]},
     "<label-attr>-metadata": {"type": "groundtruth/object-detection", "class-map": {"0": "tray"}, ...}}

The reader copes with what real manifests contain (see tests/test_manifest.py and the real files in
``/work/shared/fixtures/gt``):

* the label attribute is the job's name, so it is *auto-detected*: a key whose value is a dict with
  ``annotations`` and ``image_size`` and whose ``<key>-metadata`` says ``groundtruth/object-detection``;
* chained / adjustment jobs carry several such attributes on one line. Without an explicit choice the
  newest one wins (latest ``creation-date`` in its metadata), which is the adjusted label;
* streaming labeling jobs write the same records, spread over many manifest files, so a folder is read
  recursively;
* ``failure-reason`` records (the worker or the job failed) and records with no boxes are kept as
  negatives (an image known to hold no labelled object) and counted, unless ``drop_failed`` is set;
* boxes are clipped to the image; boxes that are degenerate after clipping (< 1 px wide or high) are dropped
  with a warning naming the entry;
* a video-tracking record (label attribute is an S3 URI of a sequence file) is not a bounding-box record and
  is rejected with a clear message;
* a line that is not valid JSON gives one error with its line number; ``skip_bad`` continues and reports.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge_app.errors import EdgeAppError
from training.s3cache import is_s3_uri, read_manifest_text

log = logging.getLogger(__name__)

BOUNDING_BOX_TYPE = "groundtruth/object-detection"
MIN_BOX_SIDE_PX = 1.0


@dataclass(frozen=True)
class Box:
    """One labelled object in image pixels, corners ``[xmin, ymin, xmax, ymax]``."""

    class_id: int
    xmin: float
    ymin: float
    xmax: float
    ymax: float

    @property
    def width(self) -> float:
        return self.xmax - self.xmin

    @property
    def height(self) -> float:
        return self.ymax - self.ymin


@dataclass
class Entry:
    """One image of a manifest with its boxes (possibly none: a negative)."""

    source_ref: str
    """``s3://...`` URI or a local path (relative refs are resolved against the manifest's folder)."""
    width: int
    height: int
    boxes: list[Box]
    label_attribute: str
    where: str
    """``file:line`` for messages."""
    metadata: dict = field(default_factory=dict)
    failure_reason: str | None = None

    @property
    def is_negative(self) -> bool:
        return not self.boxes


@dataclass
class ManifestReport:
    """What a read produced, with counts a user can check against the labeling job's console."""

    entries: list[Entry] = field(default_factory=list)
    class_names: dict[int, str] = field(default_factory=dict)
    label_attributes: set[str] = field(default_factory=set)
    negatives: int = 0
    failures: int = 0
    dropped_failures: int = 0
    dropped_boxes: list[str] = field(default_factory=list)
    clipped_boxes: int = 0
    bad_lines: list[str] = field(default_factory=list)

    @property
    def num_boxes(self) -> int:
        return sum(len(e.boxes) for e in self.entries)

    def ordered_class_names(self) -> list[str]:
        """Class names indexed by class id (gaps filled with ``class_<id>``)."""
        if not self.class_names:
            return []
        return [self.class_names.get(i, f"class_{i}") for i in range(max(self.class_names) + 1)]

    def summary(self) -> dict:
        return {
            "images": len(self.entries),
            "boxes": self.num_boxes,
            "negatives": self.negatives,
            "failures": self.failures,
            "dropped_failures": self.dropped_failures,
            "dropped_boxes": len(self.dropped_boxes),
            "clipped_boxes": self.clipped_boxes,
            "bad_lines": len(self.bad_lines),
            "label_attributes": sorted(self.label_attributes),
            "class_names": self.ordered_class_names(),
        }


def bounding_box_attributes(record: dict) -> list[str]:
    """Keys of ``record`` holding a bounding-box label (value with annotations + image_size, typed metadata)."""
    found = []
    for key, value in record.items():
        if key.endswith("-metadata") or not isinstance(value, dict):
            continue
        meta = record.get(f"{key}-metadata")
        if not isinstance(meta, dict):
            continue
        is_box_job = meta.get("type", BOUNDING_BOX_TYPE) == BOUNDING_BOX_TYPE
        if "annotations" in value and "image_size" in value and is_box_job:
            found.append(key)
    return found


def _other_job_types(record: dict) -> list[str]:
    """``key (type)`` of label attributes from non-bounding-box jobs (video tracking, classification...)."""
    out = []
    for key, value in record.items():
        if key.endswith("-metadata") and isinstance(value, dict):
            job_type = str(value.get("type", ""))
            if job_type and job_type != BOUNDING_BOX_TYPE:
                out.append(f"{key[: -len('-metadata')]} ({job_type})")
    return out


def _failure_attributes(record: dict) -> list[str]:
    """Label attributes whose metadata reports a ``failure-reason`` (labeling failed for this object)."""
    return [
        key[: -len("-metadata")]
        for key, value in record.items()
        if key.endswith("-metadata") and isinstance(value, dict) and "failure-reason" in value
    ]


def choose_attribute(record: dict, candidates: list[str], wanted: Sequence[str] | None) -> str | None:
    """The label attribute to use on this line.

    ``wanted`` (user given, in order of preference) wins when present. Otherwise the newest by metadata
    ``creation-date`` (ISO 8601 strings sort chronologically), so a chained/adjusted job's label is used.
    """
    if wanted:
        for name in wanted:
            if name in record:
                return name
        return None
    if not candidates:
        return None
    return max(candidates, key=lambda k: str(record.get(f"{k}-metadata", {}).get("creation-date", "")))


def _image_size(label: dict, where: str) -> tuple[int, int]:
    sizes = label.get("image_size")
    if not isinstance(sizes, list) or not sizes or not isinstance(sizes[0], dict):
        raise EdgeAppError(f"{where}: image_size: expected a list like [{{'width': W, 'height': H}}]")
    try:
        width, height = int(sizes[0]["width"]), int(sizes[0]["height"])
    except (KeyError, TypeError, ValueError):
        raise EdgeAppError(f"{where}: image_size: expected integer width and height, got {sizes[0]!r}") from None
    if width <= 0 or height <= 0:
        raise EdgeAppError(f"{where}: image_size: width and height must be > 0, got {width}x{height}")
    return width, height


def parse_boxes(annotations: list, width: int, height: int, where: str, report: ManifestReport) -> list[Box]:
    """Ground Truth ``left/top/width/height`` to clipped corners; degenerate boxes dropped with a warning."""
    boxes = []
    for i, ann in enumerate(annotations):
        try:
            cid = int(ann["class_id"])
            left, top = float(ann["left"]), float(ann["top"])
            w, h = float(ann["width"]), float(ann["height"])
        except (KeyError, TypeError, ValueError):
            raise EdgeAppError(
                f"{where}: annotations[{i}]: expected class_id, left, top, width, height numbers, got {ann!r}"
            ) from None
        x1, y1, x2, y2 = left, top, left + w, top + h
        cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
        cx2, cy2 = min(max(x2, 0.0), width), min(max(y2, 0.0), height)
        if (cx2 - cx1) < MIN_BOX_SIDE_PX or (cy2 - cy1) < MIN_BOX_SIDE_PX:
            msg = f"{where}: annotations[{i}]: degenerate box {[x1, y1, x2, y2]} in a {width}x{height} image, dropped"
            log.warning(msg)
            report.dropped_boxes.append(msg)
            continue
        if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2):
            report.clipped_boxes += 1
        boxes.append(Box(cid, cx1, cy1, cx2, cy2))
    return boxes


def parse_record(
    record: dict, where: str, base: str, report: ManifestReport, *,
    label_attributes: Sequence[str] | None = None, drop_failed: bool = False,
) -> Entry | None:
    """One manifest line to an `Entry` (``None`` if it is a dropped failure). Raises `EdgeAppError`."""
    if not isinstance(record, dict):
        raise EdgeAppError(f"{where}: expected a JSON object per line, got {type(record).__name__}")
    source = record.get("source-ref")
    if not isinstance(source, str) or not source:
        raise EdgeAppError(f"{where}: source-ref: missing (a bounding-box manifest line names its image)")
    candidates = bounding_box_attributes(record)
    attr = choose_attribute(record, candidates, label_attributes)
    failures = _failure_attributes(record) + (["(record)"] if "failure-reason" in record else [])
    if attr is None or attr not in candidates:
        if failures:
            reason = record.get("failure-reason") or record.get(f"{failures[0]}-metadata", {}).get("failure-reason")
            report.failures += 1
            if drop_failed:
                report.dropped_failures += 1
                return None
            size = _size_from_any(record)
            if size is None:
                raise EdgeAppError(f"{where}: failure-reason record without any image_size; cannot keep it")
            report.negatives += 1
            return Entry(_resolve(source, base), size[0], size[1], [], failures[0], where, failure_reason=str(reason))
        others = _other_job_types(record)
        if others:
            raise EdgeAppError(
                f"{where}: not a bounding-box record: {', '.join(others)}; "
                f"only {BOUNDING_BOX_TYPE} output manifests can be read"
            )
        if label_attributes:
            raise EdgeAppError(f"{where}: label attribute {', '.join(label_attributes)} not found on this line")
        raise EdgeAppError(
            f"{where}: no label attribute with annotations + image_size and {BOUNDING_BOX_TYPE} metadata"
        )
    label, meta = record[attr], record.get(f"{attr}-metadata", {})
    width, height = _image_size(label, where)
    annotations = label.get("annotations") or []
    if not isinstance(annotations, list):
        raise EdgeAppError(f"{where}: {attr}.annotations: expected a list")
    class_map = meta.get("class-map") or {}
    for key, name in class_map.items():
        cid = int(key)
        known = report.class_names.get(cid)
        if known is not None and known != name:
            raise EdgeAppError(f"{where}: class-map: class {cid} is {name!r} here but {known!r} on earlier lines")
        report.class_names[cid] = str(name)
    boxes = parse_boxes(annotations, width, height, where, report)
    report.label_attributes.add(attr)
    if not boxes:
        report.negatives += 1
    failure = meta.get("failure-reason")
    if failure:
        report.failures += 1
    return Entry(_resolve(source, base), width, height, boxes, attr, where, metadata=meta,
                 failure_reason=str(failure) if failure else None)


def _size_from_any(record: dict) -> tuple[int, int] | None:
    for value in record.values():
        if isinstance(value, dict) and "image_size" in value:
            try:
                return _image_size(value, "")
            except EdgeAppError:
                return None
    return None


def _resolve(source: str, base: str) -> str:
    """Relative local refs are relative to the manifest's folder (the sim writes them so)."""
    if is_s3_uri(source) or Path(source).is_absolute() or not base:
        return source
    if is_s3_uri(base):
        return base.rstrip("/") + "/" + source
    return str(Path(base) / source)


def manifest_files(path: str) -> list[str]:
    """A manifest file, an ``s3://`` manifest, or a folder (streaming jobs write many) read recursively."""
    if is_s3_uri(path):
        return [path]
    p = Path(path)
    if p.is_dir():
        files = sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix in (".manifest", ".jsonl", ".json"))
        if not files:
            raise EdgeAppError(f"{path}: folder holds no *.manifest / *.jsonl files")
        return files
    if not p.is_file():
        raise EdgeAppError(f"{path}: manifest not found")
    return [str(p)]


def read_manifests(
    paths: Iterable[str | Path], *, label_attributes: Sequence[str] | None = None, skip_bad: bool = False,
    drop_failed: bool = False, cache_dir: Path | None = None,
) -> ManifestReport:
    """Read one or more manifests into a `ManifestReport`.

    With ``skip_bad`` a bad line is recorded in ``report.bad_lines`` (and logged) instead of raising.
    """
    report = ManifestReport()
    for path in paths:
        for file in manifest_files(str(path)):
            text = read_manifest_text(file, cache_dir=cache_dir)
            base = file.rsplit("/", 1)[0] if is_s3_uri(file) else str(Path(file).parent)
            for line_no, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                where = f"{file}:{line_no}"
                try:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise EdgeAppError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
                    entry = parse_record(record, where, base, report, label_attributes=label_attributes,
                                         drop_failed=drop_failed)
                except EdgeAppError as exc:
                    if not skip_bad:
                        raise
                    log.warning("skipped %s", exc)
                    report.bad_lines.append(str(exc))
                    continue
                if entry is not None:
                    report.entries.append(entry)
    return report

"""SageMaker Ground Truth bounding-box *output* manifest for the sampled frames.

One JSON object per line, exactly as a Ground Truth labelling job writes it, with the label attribute named
``bounding-box``::

    {"source-ref": "frames/line-1-s1-000015.jpg",
     "bounding-box": {"image_size": [{"width": 1280, "height": 720, "depth": 3}],
                      "annotations": [{"class_id": 0, "left": 412, "top": 230, "width": 118, "height": 87}]},
     "bounding-box-metadata": {"objects": [{"confidence": 1.0}], "class-map": {"0": "tray"},
                               "type": "groundtruth/object-detection", "human-annotated": "yes",
                               "creation-date": "2026-03-14T08:00:01.000000",
                               "job-name": "labeling-job/sim-line-1"}}

``source-ref`` is relative to the manifest's folder (the dataset reader resolves relative refs against it).
Coordinates are integer pixels (left/top inclusive, width/height), as in real output manifests. Only trays with a
visible fraction >= ``min_visible`` (default 0.5) are labelled: a labeller would not box a tray hidden by the
arm or the covering bin. ``creation-date`` is UTC without a zone suffix, like real jobs write it, and derived
from the seed and the frame time so the manifest is reproducible byte for byte.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

LABEL = "bounding-box"
CLASS_MAP = {"0": "tray"}
DEFAULT_MIN_VISIBLE = 0.5


def creation_date(seed: int, t: float) -> str:
    """Deterministic labelling time: a day in 2026 picked by the seed, plus the frame's media time."""
    base = datetime(2026, 1, 1, 8, 0, 0, tzinfo=UTC) + timedelta(days=seed % 365)
    return (base + timedelta(seconds=round(t, 6))).strftime("%Y-%m-%dT%H:%M:%S.%f")


def manifest_line(source_ref: str, width: int, height: int, boxes: list[tuple[int, int, int, int]],
                  line: str, seed: int, t: float) -> str:
    """One output-manifest line (with the trailing newline) for one image; boxes are x1, y1, x2, y2 px."""
    annotations = [{"class_id": 0, "left": x1, "top": y1, "width": x2 - x1, "height": y2 - y1}
                   for x1, y1, x2, y2 in boxes]
    record = {
        "source-ref": source_ref,
        LABEL: {"image_size": [{"width": width, "height": height, "depth": 3}], "annotations": annotations},
        f"{LABEL}-metadata": {
            "objects": [{"confidence": 1.0} for _ in annotations],
            "class-map": dict(CLASS_MAP),
            "type": "groundtruth/object-detection",
            "human-annotated": "yes",
            "creation-date": creation_date(seed, t),
            "job-name": f"labeling-job/sim-{line}",
        },
    }
    return json.dumps(record) + "\n"

"""Ground truth of a generated video: ``truth.json`` (per bin) and ``boxes.jsonl`` (per frame).

``truth.json``::

    {"line": "line-1", "seed": 1, "fps": 15, "width": 1280, "height": 720, "frames": N, "duration": 123.4,
     "bins": [{"bin_id": 1, "trays": 12, "start_t": 0.0, "end_t": 41.3, "filled_t": 38.1, "complete": true}],
     "total_trays": 60, "label_min_visible": 0.5, "params": {...}}

* ``trays``: trays placed in the bin (the number a counter must report for it);
* ``start_t``: the bin arrives (starts sliding in; 0.0 for the first bin, already in place);
* ``end_t``: the next bin has slid over it and hides all its trays (or the end of the video);
* ``filled_t``: its last tray was placed; ``complete``: all its planned trays were placed within the video
  (false only for the last bin of a ``--duration`` video cut short; a tray still in the hand when the video ends
  appears in ``boxes.jsonl`` but is not counted).
Bins with no tray placed within the video are not listed. ``total_trays`` is the sum over bins.

``boxes.jsonl``: one line per frame ``{"frame": i, "t": i/fps, "trays": [{"box": [x1, y1, x2, y2],
"visible": 0.83, "tray_id": 17, "bin_id": 2}]}`` for every tray at least partly visible (visible fraction of its
whole area: the arm, the covering bin and the frame edge all hide), box = integer bounding box of its visible
pixels, x2/y2 exclusive, inside the frame. A tray being carried in belongs to the bin it is carried to.
"""

from __future__ import annotations

import json
from typing import Any

from sim.render import TrayTruth
from sim.scene import Timeline


def boxes_line(index: int, fps: float, trays: list[TrayTruth]) -> str:
    items = [{"box": list(tr.box), "visible": round(tr.visible, 3), "tray_id": tr.tray_id, "bin_id": tr.bin_id}
             for tr in sorted(trays, key=lambda x: x.tray_id)]
    return json.dumps({"frame": index, "t": index / fps, "trays": items}) + "\n"


def truth_record(timeline: Timeline, frames: int, fps: float, header: dict[str, Any]) -> dict[str, Any]:
    """Per-bin truth for a video of ``frames`` frames (times are rounded to the millisecond)."""
    last_t = (frames - 1) / fps
    duration = frames / fps
    bins = []
    for b in timeline.bins:
        if b.arrive_t > last_t:
            break
        placed = [tp for tp in b.trays if tp.place_t <= last_t]
        if not placed:
            continue
        end = b.covered_t if b.covered_t is not None and b.covered_t <= last_t else duration
        bins.append({
            "bin_id": b.bin_id,
            "trays": len(placed),
            "start_t": round(b.arrive_t, 3),
            "end_t": round(end, 3),
            "filled_t": round(placed[-1].place_t, 3),
            "complete": len(placed) == len(b.trays),
        })
    return {**header, "frames": frames, "duration": round(duration, 3), "bins": bins,
            "total_trays": sum(b["trays"] for b in bins)}

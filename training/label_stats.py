"""Label statistics of Ground Truth output manifests: the numbers people put on a labeling dashboard.

What is counted (from the manifests alone, offline):

* boxes per class, images, negatives (images labeled with no box), failed labels;
* boxes per image (histogram): a bin holds up to ~24 trays, so images with far more boxes, or many empty
  ones, point at labeling mistakes or a camera looking at the wrong place;
* image sizes (``W x H``): a camera whose resolution changed shows up as a second size;
* box size (square root of the box area as a fraction of the image area): trays are similar in size, so a
  second mode is a different camera distance or boxes drawn around groups of trays;
* images and boxes per packaging line (the group the training split uses) and per day (``creation-date`` of
  the label, i.e. when the worker finished it): is every line represented, is labeling keeping up.

Shown as a rich table (``edge-app dataset stats``) and one PNG with a chart per statistic (matplotlib);
``--json`` writes the same numbers for other tools.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from training.manifest import ManifestReport

DEFAULT_LINE_REGEX = r"(line-[A-Za-z0-9_.]+)"
UNKNOWN = "(unknown)"


@dataclass
class LabelStats:
    images: int = 0
    boxes: int = 0
    negatives: int = 0
    failures: int = 0
    per_class: Counter = field(default_factory=Counter)
    boxes_per_image: Counter = field(default_factory=Counter)
    image_sizes: Counter = field(default_factory=Counter)
    box_size: list[float] = field(default_factory=list)
    per_line: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    per_day: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))

    def to_dict(self) -> dict:
        sizes = np.array(self.box_size) if self.box_size else np.zeros(0)
        return {
            "images": self.images, "boxes": self.boxes, "negatives": self.negatives, "failures": self.failures,
            "per_class": dict(self.per_class.most_common()),
            "boxes_per_image": {str(k): v for k, v in sorted(self.boxes_per_image.items())},
            "image_sizes": dict(self.image_sizes.most_common()),
            "box_size_fraction": ({"p5": round(float(np.percentile(sizes, 5)), 4),
                                   "median": round(float(np.median(sizes)), 4),
                                   "p95": round(float(np.percentile(sizes, 95)), 4)} if len(sizes) else {}),
            "per_line": {k: dict(v) for k, v in sorted(self.per_line.items())},
            "per_day": {k: dict(v) for k, v in sorted(self.per_day.items())},
        }


def line_of(source_ref: str, metadata: dict, pattern: str | None, key: str | None) -> str:
    if key and isinstance(metadata, dict) and metadata.get(key):
        return str(metadata[key])
    match = re.search(pattern or DEFAULT_LINE_REGEX, source_ref)
    if match:
        return match.group(1) if match.groups() else match.group(0)
    return UNKNOWN


def compute(report: ManifestReport, *, line_regex: str | None = None, line_key: str | None = None) -> LabelStats:
    stats = LabelStats(failures=report.failures)
    names = report.class_names
    for entry in report.entries:
        stats.images += 1
        n = len(entry.boxes)
        stats.boxes += n
        stats.negatives += n == 0
        stats.boxes_per_image[n] += 1
        stats.image_sizes[f"{entry.width}x{entry.height}"] += 1
        area = float(entry.width * entry.height)
        for box in entry.boxes:
            stats.per_class[names.get(box.class_id, f"class_{box.class_id}")] += 1
            stats.box_size.append(float(np.sqrt(box.width * box.height / area)))
        line = line_of(entry.source_ref, entry.metadata, line_regex, line_key)
        day = str(entry.metadata.get("creation-date", ""))[:10] if isinstance(entry.metadata, dict) else ""
        for bucket in (stats.per_line[line], stats.per_day[day or UNKNOWN]):
            bucket["images"] += 1
            bucket["boxes"] += n
    return stats


def print_tables(stats: LabelStats, console=None) -> None:  # noqa: ANN001 - rich Console
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    d = stats.to_dict()
    overview = Table(title="Labels")
    for col in ("images", "boxes", "negatives", "failed labels", "boxes / image", "box size (median)"):
        overview.add_column(col, justify="right")
    overview.add_row(str(d["images"]), str(d["boxes"]), str(d["negatives"]), str(d["failures"]),
                     f"{d['boxes'] / max(d['images'], 1):.2f}",
                     f"{d['box_size_fraction'].get('median', 0):.3f}" if d["box_size_fraction"] else "-")
    console.print(overview)
    for title, rows, cols in (
        ("Boxes per class", [(k, v) for k, v in d["per_class"].items()], ("class", "boxes")),
        ("Image sizes", list(d["image_sizes"].items()), ("W x H", "images")),
        ("Boxes per image", list(d["boxes_per_image"].items()), ("boxes", "images")),
        ("Per line", [(k, v.get("images", 0), v.get("boxes", 0)) for k, v in d["per_line"].items()],
         ("line", "images", "boxes")),
        ("Per day (creation-date)", [(k, v.get("images", 0), v.get("boxes", 0)) for k, v in d["per_day"].items()],
         ("day", "images", "boxes")),
    ):
        table = Table(title=title)
        for i, col in enumerate(cols):
            table.add_column(col, justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*(str(v) for v in row))
        console.print(table)


def plot(stats: LabelStats, out: Path) -> Path:
    """One PNG, six charts: class, boxes/image, image size, box size, per line, per day."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = stats.to_dict()
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), dpi=90)

    def bars(ax, items: dict, title: str, xlabel: str, color: str = "tab:blue") -> None:  # noqa: ANN001
        keys = list(items)
        ax.bar(range(len(keys)), list(items.values()), color=color)
        ax.set_xticks(range(len(keys)), keys, rotation=30 if len(keys) > 4 else 0, ha="right", fontsize=8)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.grid(axis="y", alpha=0.3)

    bars(axes[0, 0], d["per_class"], "Boxes per class", "class")
    bars(axes[0, 1], {k: v for k, v in d["boxes_per_image"].items()}, "Images by number of boxes", "boxes in image",
         "tab:orange")
    bars(axes[0, 2], dict(list(d["image_sizes"].items())[:10]), "Image sizes (top 10)", "W x H", "tab:green")
    ax = axes[1, 0]
    ax.hist(stats.box_size or [0.0], bins=30, color="tab:purple")
    ax.set_title("Box size")
    ax.set_xlabel("sqrt(box area / image area)")
    ax.grid(axis="y", alpha=0.3)
    bars(axes[1, 1], {k: v.get("boxes", 0) for k, v in d["per_line"].items()}, "Boxes per line", "line", "tab:red")
    bars(axes[1, 2], {k: v.get("images", 0) for k, v in d["per_day"].items()}, "Images labeled per day", "day",
         "tab:gray")
    fig.suptitle(f"{d['images']} images, {d['boxes']} boxes, {d['negatives']} negatives, "
                 f"{d['failures']} failed labels")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def write_json(stats: LabelStats, out: Path) -> None:
    from training.lst import atomic_write_text

    atomic_write_text(Path(out), json.dumps(stats.to_dict(), indent=1, ensure_ascii=False))

"""Split a dataset into train / val / test **by packaging line**, write it down, check it for leakage.

Frames of one line share the camera, the background, the lighting and often the very same trays seconds
apart; a random per-image split puts near-duplicates on both sides and reports an mAP the model will not
reach on a new line. The article's remedy: "training and test files had images collected from different
packaging lines". So every image gets a *group key* (its line): a metadata field (``--group-key line``) or
the first capture group of a regex on the image path (``--group-regex '(line-\\d+)'``), and whole groups are
assigned to splits. ``split.json`` records the assignment, and `find_leaks` checks that no group and no image
(same path or same bytes) appears in two splits; ``edge-app dataset split`` refuses to write a leaking split.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from edge_app.errors import EdgeAppError
from training.manifest import Entry

SPLITS = ("train", "val", "test")


def group_of(entry: Entry, *, key: str | None = None, pattern: str | None = None) -> str:
    """The entry's group (packaging line) from its metadata ``key`` or the regex ``pattern`` on its path."""
    if key:
        value = entry.metadata.get(key) if isinstance(entry.metadata, dict) else None
        if value not in (None, ""):
            return str(value)
    if pattern:
        match = re.search(pattern, entry.source_ref)
        if match:
            return match.group(1) if match.groups() else match.group(0)
    how = " or ".join(filter(None, [f"metadata key {key!r}" if key else "", f"regex {pattern!r}" if pattern else ""]))
    how = how or "nothing (give --group-key or --group-regex)"
    raise EdgeAppError(f"{entry.where}: no group (packaging line) found by {how}")


def assign_groups(groups: Sequence[str], *, val: Sequence[str] = (), test: Sequence[str] = (),
                  val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0) -> dict[str, str]:
    """Group -> split. Explicit ``val``/``test`` groups win; otherwise groups are shuffled (seeded) and cut.

    Each non-empty fraction gets at least one group when there are at least three groups.
    """
    unique = sorted(set(groups))
    unknown = sorted((set(val) | set(test)) - set(unique))
    if unknown:
        raise EdgeAppError(f"split: groups {unknown} not found in the data (found {unique})")
    if set(val) & set(test):
        raise EdgeAppError(f"split: groups {sorted(set(val) & set(test))} given for both val and test")
    assignment: dict[str, str] = {g: "val" for g in val} | {g: "test" for g in test}
    rest = [g for g in unique if g not in assignment]
    if not val and not test:
        rng = np.random.default_rng(seed)
        rest = [rest[i] for i in rng.permutation(len(rest))]
        n = len(rest)
        n_test = max(1 if n >= 3 and test_fraction > 0 else 0, int(round(n * test_fraction)))
        n_val = max(1 if n >= 3 and val_fraction > 0 else 0, int(round(n * val_fraction)))
        for g in rest[:n_test]:
            assignment[g] = "test"
        for g in rest[n_test:n_test + n_val]:
            assignment[g] = "val"
        rest = rest[n_test + n_val:]
    for g in rest:
        assignment[g] = "train"
    if not any(s == "train" for s in assignment.values()):
        raise EdgeAppError("split: no group left for training")
    return assignment


def file_digest(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def find_leaks(split: dict, *, check_bytes: bool = True) -> list[str]:
    """Problems that make a split leak: a group in two splits, an image path or identical bytes in two.

    ``split`` is the ``split.json`` structure: ``{"groups": {split: [...]}, "images": {split: [paths]}}``.
    """
    problems = []
    seen_group: dict[str, str] = {}
    for name in SPLITS:
        for g in split.get("groups", {}).get(name, []):
            if g in seen_group and seen_group[g] != name:
                problems.append(f"group {g!r} is in both {seen_group[g]} and {name}")
            seen_group[g] = name
    seen_path: dict[str, str] = {}
    seen_bytes: dict[str, tuple[str, str]] = {}
    for name in SPLITS:
        for path in split.get("images", {}).get(name, []):
            if path in seen_path and seen_path[path] != name:
                problems.append(f"image {path} is in both {seen_path[path]} and {name}")
            seen_path[path] = name
            digest = file_digest(path) if check_bytes else None
            if digest:
                if digest in seen_bytes and seen_bytes[digest][0] != name:
                    problems.append(f"image {path} ({name}) has the same bytes as {seen_bytes[digest][1]} "
                                    f"({seen_bytes[digest][0]})")
                seen_bytes.setdefault(digest, (name, path))
    return problems


def split_entries(entries: Iterable[Entry], assignment: dict[str, str], *, key: str | None = None,
                  pattern: str | None = None) -> tuple[dict[str, list[Entry]], dict]:
    """Entries per split and the ``split.json`` record (groups, image paths, counts)."""
    parts: dict[str, list[Entry]] = {s: [] for s in SPLITS}
    group_images: dict[str, int] = defaultdict(int)
    for entry in entries:
        group = group_of(entry, key=key, pattern=pattern)
        parts[assignment[group]].append(entry)
        group_images[group] += 1
    record = {
        "group_by": {"key": key, "regex": pattern},
        "groups": {s: sorted(g for g, a in assignment.items() if a == s) for s in SPLITS},
        "counts": {s: {"images": len(parts[s]), "boxes": sum(len(e.boxes) for e in parts[s]),
                       "negatives": sum(1 for e in parts[s] if not e.boxes)} for s in SPLITS},
        "images_per_group": dict(sorted(group_images.items())),
        "images": {s: [e.source_ref for e in parts[s]] for s in SPLITS},
    }
    return parts, record


def write_split(record: dict, out: Path) -> None:
    from training.lst import atomic_write_text

    atomic_write_text(out, json.dumps(record, indent=1, ensure_ascii=False))


def read_split(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EdgeAppError(f"{path}: cannot read split ({exc})") from None

"""A local spool of collected frames waiting for upload: nothing lost on a crash or an S3 outage.

Layout under ``root``::

    pending/<name>.jpg     the frame (JPEG bytes)
    pending/<name>.json    its sidecar: metadata + the S3 key + the JPEG's sha256 (the *commit* record)
    done/<name>.json       the sidecar (+ upload time, URI) once both objects are in S3 (the journal of uploads)

Why this order: every file is written to a temp name, fsynced and renamed, and the sidecar is written *after*
the JPEG, so an item exists (is listed by `pending`) only when both are complete; a crash in the middle leaves
a JPEG without a sidecar, which `recover` removes (that frame was never acknowledged to anyone). Marking an
item uploaded writes its journal record into ``done/`` first and only then deletes the pending sidecar and
JPEG, so a crash between the two leaves pending files whose record is in ``done/``: `recover` deletes them,
they are not uploaded again.

The uploader decides what to upload from ``pending/`` alone, and checks S3 for the object (by the sha256 in
its metadata) before every upload, so the crash window between "S3 has it" and "done/ has it" does not cause
a second PUT either (a second PUT would fire a second S3 event and a second labeling task).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from edge_app.fileio import atomic_write_bytes

log = logging.getLogger(__name__)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class SpoolItem:
    name: str
    image: Path
    sidecar: Path

    def read_sidecar(self) -> dict:
        return json.loads(self.sidecar.read_text(encoding="utf-8"))


class Spool:
    """See the module docstring. ``max_mb`` caps the pending bytes: beyond it `put` refuses new frames
    (the oldest, not yet uploaded ones are never dropped to make room)."""

    def __init__(self, root: Path, max_mb: float = 2048.0) -> None:
        self.root = Path(root)
        self.pending_dir = self.root / "pending"
        self.done_dir = self.root / "done"
        self.pending_dir.mkdir(parents=True, exist_ok=True)
        self.done_dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_mb * 2**20)
        self.recovered = self.recover()

    def recover(self) -> list[str]:
        """Remove what a crash can leave: temp files, JPEGs without a pending sidecar. Returns removed names."""
        removed = []
        for side in list(self.pending_dir.glob("*.json")):
            if (self.done_dir / side.name).exists():  # crash while marking it uploaded: finish that
                side.unlink(missing_ok=True)
                removed.append(side.name)
        for path in self.pending_dir.iterdir():
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
                removed.append(path.name)
            elif path.suffix == ".jpg" and not path.with_suffix(".json").exists():
                state = "already uploaded" if (self.done_dir / f"{path.stem}.json").exists() else "incomplete"
                log.warning("spool: removing %s (%s)", path.name, state)
                path.unlink(missing_ok=True)
                removed.append(path.name)
        return removed

    def pending_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.pending_dir.glob("*.jpg"))

    def put(self, name: str, jpeg: bytes, sidecar: dict) -> SpoolItem | None:
        """Store a frame; ``None`` if the spool is full. ``sidecar`` gets ``sha256`` and ``bytes`` added."""
        if self.pending_bytes() + len(jpeg) > self.max_bytes:
            log.warning("spool: %s is full (%.0f MB pending); frame %s not collected", self.root,
                        self.max_bytes / 2**20, name)
            return None
        image = self.pending_dir / f"{name}.jpg"
        side = self.pending_dir / f"{name}.json"
        record = {**sidecar, "sha256": hashlib.sha256(jpeg).hexdigest(), "bytes": len(jpeg)}
        atomic_write_bytes(image, jpeg)
        atomic_write_bytes(side, json.dumps(record, indent=1, sort_keys=True).encode())
        _fsync_dir(self.pending_dir)
        return SpoolItem(name, image, side)

    def pending(self) -> list[SpoolItem]:
        """Committed items not yet uploaded, oldest first (names start with the capture time)."""
        items = []
        for side in sorted(self.pending_dir.glob("*.json")):
            image = side.with_suffix(".jpg")
            if image.exists():
                items.append(SpoolItem(side.stem, image, side))
        return items

    def mark_uploaded(self, item: SpoolItem, extra: dict | None = None) -> None:
        """Journal the upload in ``done/`` (sidecar + ``extra`` such as the upload time), then drop both files.

        The pending sidecar is never rewritten (its bytes are what S3 holds, and what the uploader's
        ``sha256`` check compares), so a crash at any point here leads at worst to a skipped re-check.
        """
        record = item.read_sidecar() | (extra or {})
        atomic_write_bytes(self.done_dir / item.sidecar.name, json.dumps(record, indent=1, sort_keys=True).encode())
        _fsync_dir(self.done_dir)
        item.sidecar.unlink(missing_ok=True)
        item.image.unlink(missing_ok=True)

    def uploaded_names(self) -> list[str]:
        return sorted(p.stem for p in self.done_dir.glob("*.json"))

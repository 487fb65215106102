"""Atomic file writes: a reader never sees a half-written output (temp file + fsync + ``os.replace``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from edge_app.fileio import atomic_write_bytes, atomic_write_text  # noqa: F401 - re-exported


def fsync_path(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


class AtomicTextFile:
    """A text file written line by line into a temp file and moved into place by :meth:`commit`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp")
        self.f: IO[str] = open(self.tmp, "w", encoding="utf-8")  # noqa: SIM115 - closed in commit/abort

    def write(self, line: str) -> None:
        self.f.write(line)

    def commit(self) -> None:
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.f.close()
        self.tmp.unlink(missing_ok=True)

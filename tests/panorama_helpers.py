"""Shared material for the Panorama tests: a scratch copy of the project, a tiny MXNet export, a fake
`docker export` tar."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

from conftest import REPO

PROJECT_FILES = ("panorama.json", "graphs", "packages/123456789012-tray_counter_code-1.0",
                 "packages/123456789012-tray_detector_model-1.0")


def copy_project(dest: Path) -> Path:
    """The project's Panorama files (not the app code, which is imported from the installed package)."""
    for item in PROJECT_FILES:
        src = REPO / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / item).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / item)
    for item in ("edge_app", "pyproject.toml", "README.md"):  # the code package's container files
        target = dest / item
        if not target.exists():
            target.symlink_to(REPO / item)
    return dest


def edit_json(path: Path, change) -> None:  # noqa: ANN001 - a function mutating the document
    doc = json.loads(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(json.dumps(doc, indent=4), encoding="utf-8")


def tiny_mxnet_export(folder: Path, name: str = "tiny", payload: bytes = b"params-v1") -> Path:
    """``<prefix>-symbol.json`` with a ``data`` input and a small ``-0000.params``; returns the prefix."""
    folder.mkdir(parents=True, exist_ok=True)
    prefix = folder / name
    symbol = {"nodes": [{"op": "null", "name": "data", "inputs": []},
                        {"op": "Convolution", "name": "conv0", "inputs": [[0, 0, 0]]}],
              "arg_nodes": [0], "heads": [[1, 0, 0]]}
    Path(f"{prefix}-symbol.json").write_text(json.dumps(symbol), encoding="utf-8")
    Path(f"{prefix}-0000.params").write_bytes(payload)
    return prefix


def fake_container_tar(path: Path) -> Path:
    """A small tar standing in for `docker export` output (the build only gzips and hashes it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    app = path.with_suffix(".app.py")
    app.write_text("print('node')\n", encoding="utf-8")
    with tarfile.open(path, "w") as tar:
        tar.add(app, arcname="panorama/app.py")
    return path

"""`inspections:` in the app config: defaults, stream validation, path resolution, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edge_app.config import load_config
from edge_app.errors import EdgeAppError


def _write(tmp_path: Path, inspections: list[dict]) -> Path:
    raw = {"model": {"path": "det.onnx"}, "state_dir": "state",
           "streams": [{"name": "cam-1", "uri": "a.mp4", "line": "line-7"}, {"name": "cam-2", "uri": "b.mp4"}],
           "inspections": inspections}
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_inspection_defaults_and_paths(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, [{"name": "pins", "stream": "cam-1", "model_dir": "models/pins",
                                         "roi": [10, 20, 256, 128]}]))
    inspection, = cfg.inspections
    assert inspection.model_dir == tmp_path / "models" / "pins"
    assert inspection.snapshot_dir == tmp_path / "state" / "anomaly" / "pins"
    assert inspection.roi == (10, 20, 256, 128)
    assert (inspection.every_n_frames, inspection.trigger_topic, inspection.save_snapshots) == (30, None, "anomalous")
    assert inspection.line is None  # the inspector falls back to the stream's line


@pytest.mark.parametrize(("inspection", "message"), [
    ({"name": "pins", "stream": "cam-9", "model_dir": "m"}, "inspections.0.stream: unknown stream 'cam-9'"),
    ({"name": "pins", "stream": "cam-1", "model_dir": "m", "every_n_frames": None},
     "set every_n_frames or trigger_topic"),
    ({"name": "pins", "stream": "cam-1", "model_dir": "m", "roi": [0, 0, 4, 100]}, "inspections.0.roi.2"),
    ({"name": "pins", "stream": "cam-1", "model_dir": "m", "treshold": 3}, "inspections.0.treshold: unknown key"),
    ({"name": "pins", "stream": "cam-1"}, "inspections.0.model_dir: Field required"),
])
def test_bad_inspections_are_one_line_errors(tmp_path: Path, inspection: dict, message: str) -> None:
    with pytest.raises(EdgeAppError) as err:
        load_config(_write(tmp_path, [inspection]))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_inspection_names_are_unique(tmp_path: Path) -> None:
    twice = [{"name": "pins", "stream": "cam-1", "model_dir": "m"}, {"name": "pins", "stream": "cam-2",
                                                                     "model_dir": "m"}]
    with pytest.raises(EdgeAppError, match="inspection names must be unique, repeated: pins"):
        load_config(_write(tmp_path, twice))

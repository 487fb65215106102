"""Config validation: every mistake is one line naming the file, the key and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_app.config import load_config
from edge_app.errors import EdgeAppError

REPO = Path(__file__).resolve().parents[1]

GOOD = """
site: plant-7
model:
  path: model.onnx
  score_threshold: 0.4
streams:
  - name: line-1
    uri: video.mp4
    roi: [[0, 0], [100, 0], [100, 100]]
    counter: {window: 10}
mqtt:
  port: 1884
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_good_config_loads_and_resolves_paths(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.site == "plant-7"
    assert cfg.streams[0].counter.window == 10
    assert cfg.streams[0].line_id == "line-1"
    assert cfg.model.path == tmp_path.resolve() / "model.onnx"
    assert cfg.streams[0].uri == str(tmp_path.resolve() / "video.mp4")
    assert cfg.mqtt.port == 1884 and cfg.mqtt.qos == 1


def test_example_configs_are_valid() -> None:
    """Every shipped config validates against its own schema (the flywheel has its own settings file)."""
    from training.flywheel.settings import load_settings

    configs = sorted((REPO / "configs").glob("*.yaml"))
    assert any(p.name == "demo.yaml" for p in configs), "the repo ships the demo config"
    for path in configs:
        if path.name == "flywheel.yaml":
            load_settings(path)
        else:
            load_config(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("score_threshold", "score_treshold"), "model.score_treshold: unknown key"),
        (GOOD.replace("window: 10", "window: ten"), "streams.0.counter.window: Input should be a valid integer"),
        (GOOD.replace("port: 1884", "port: 99999"), "mqtt.port: Input should be less than or equal to 65535"),
        (GOOD.replace("[[0, 0], [100, 0], [100, 100]]", "[[0, 0], [1, 1]]"), "streams.0.roi"),
        (GOOD.replace("  path: model.onnx\n", ""), "model.path: Field required"),
        (GOOD.replace("mqtt:", "  - name: line-1\n    uri: b.mp4\nmqtt:"), "stream names must be unique"),
        ("streams: [\n", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping"),
    ],
)
def test_bad_config_gives_one_precise_line(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(EdgeAppError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    assert expected in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EdgeAppError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")

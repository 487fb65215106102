"""Unit tests of the app's own pieces: per-stream processing, summary vs truth, heartbeat, log level."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from edge_app.app import SerializedPublisher, is_untrained, setup_logging
from edge_app.counter import BinCounter
from edge_app.detections import Detections
from edge_app.errors import EdgeAppError
from edge_app.frame import Frame
from edge_app.health import HealthReporter, format_health
from edge_app.roi import Roi
from edge_app.stream_processor import StreamProcessor
from edge_app.summary import StreamSummary, attach_truth, find_truth, format_table

IMAGE = np.zeros((100, 200, 3), np.uint8)


class FakePublisher:
    def __init__(self) -> None:
        self.commits: list[tuple[list, dict]] = []

    def commit(self, events: list, counter_states: dict | None = None) -> None:
        self.commits.append((list(events), dict(counter_states or {})))


class FakeRecorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, int, float, int]] = []

    def write(self, stream: str, frame: int, t: float, detections: Detections) -> None:
        self.lines.append((stream, frame, t, len(detections)))


def dets(*rows: tuple[float, float, float, float, float, int]) -> Detections:
    return Detections(np.array([r[:4] for r in rows]).reshape(-1, 4), np.array([r[4] for r in rows]),
                      np.array([r[5] for r in rows]), ("tray", "hand"))


def test_processor_filters_score_and_class_records_before_roi_and_counts_inside_roi() -> None:
    publisher, recorder = FakePublisher(), FakeRecorder()
    roi = Roi([(0, 0), (100, 0), (100, 100), (0, 100)])  # left half of the 200 px wide frame
    counter = BinCounter("s", "line", None)
    proc = StreamProcessor("s", counter, roi, publisher, score_threshold=0.5, count_classes=["tray"],
                           recorder=recorder)
    detections = dets(
        (10, 10, 30, 30, 0.9, 0),    # tray inside: counted
        (40, 10, 60, 30, 0.3, 0),    # low score: ignored
        (120, 10, 140, 30, 0.9, 0),  # tray outside the ROI: recorded, not counted
        (10, 50, 30, 70, 0.9, 1),    # a hand: not a counted class
    )
    proc(Frame("s", 0, 0.0, IMAGE), detections)
    assert recorder.lines == [("s", 0, 0.0, 2)]  # score and class filtered, ROI not applied
    assert counter.visible == 1
    events, states = publisher.commits[0]  # the first frame emits a count event, committed with the state
    assert events and states["s"] == counter.snapshot()


def test_finish_closes_the_last_bin_but_save_state_does_not() -> None:
    def fed() -> tuple[StreamProcessor, FakePublisher]:
        publisher = FakePublisher()
        proc = StreamProcessor("s", BinCounter("s", "line", None), Roi(None), publisher)
        for i in range(30):
            proc(Frame("s", i, i / 10, IMAGE), dets(*[(10 * k, 0, 10 * k + 5, 5, 0.9, 0) for k in range(3)]))
        return proc, publisher

    finished, pub1 = fed()
    finished.finish()
    assert finished.counter.bins == [3]
    assert any(type(e).__name__ == "BinCompleted" for e in pub1.commits[-1][0])
    assert finished.finish() == []  # idempotent

    interrupted, pub2 = fed()
    interrupted.save_state()
    assert interrupted.counter.bins == [] and interrupted.counter.local == 3
    assert pub2.commits[-1] == ([], {"s": interrupted.counter.snapshot()})


def test_truth_lookup_and_error_percent(tmp_path: Path) -> None:
    video = tmp_path / "demo_line1.mp4"
    video.write_bytes(b"x")
    assert find_truth(str(video)) is None
    (tmp_path / "truth.json").write_text(json.dumps({"bins": [{"trays": 4}, {"trays": 6}], "total_trays": 10}))
    assert find_truth(str(video)) == tmp_path / "truth.json"
    (tmp_path / "demo_line1.truth.json").write_text(json.dumps({"bins": [{"trays": 5}], "total_trays": 5}))
    assert find_truth(str(video)) == tmp_path / "demo_line1.truth.json"  # the specific file wins
    summary = attach_truth(StreamSummary("s", 10, 5.0, 4, [4], 4), str(video))
    assert summary.true_total == 5 and summary.error_percent == -20.0
    assert "-20.0%" in format_table([summary])
    assert find_truth("rtsp://camera/stream") is None


def test_heartbeat_publishes_at_start_and_keeps_going_when_publishing_fails() -> None:
    sent: list[dict] = []
    two = threading.Event()

    def publish(health: dict) -> None:
        sent.append(health)
        if len(sent) == 1:
            raise ConnectionError("broker hiccup")
        two.set()

    reporter = HealthReporter(0.01, lambda: {"streams": {"a": {"fps": 1.0, "dropped_frames": 0,
                                                               "latency_ms": {"p95": 3.0}}}}, publish)
    reporter.start()
    assert two.wait(5)
    reporter.stop()
    assert not reporter.is_alive() and len(sent) >= 2
    assert "a 1.0 fps 0 dropped p95 3.0 ms" in format_health(sent[0])


def test_serialized_publisher_never_runs_two_calls_at_once() -> None:
    inside, overlaps = [0], [0]

    class Slow(FakePublisher):
        def commit(self, events: list, counter_states: dict | None = None) -> None:
            inside[0] += 1
            overlaps[0] = max(overlaps[0], inside[0])
            threading.Event().wait(0.001)
            inside[0] -= 1

    publisher = SerializedPublisher(Slow())
    threads = [threading.Thread(target=lambda: [publisher.commit([]) for _ in range(20)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps[0] == 1


def test_log_level_and_untrained_detection() -> None:
    with pytest.raises(EdgeAppError, match="--log-level"):
        setup_logging("LOUD")
    setup_logging("warning")
    assert is_untrained("untrained-ssd_300_mobilenet0.25_custom-seed0")
    assert not is_untrained("tray-detector-2026-11-23")


def test_the_readme_config_example_is_a_valid_config() -> None:
    import re

    import yaml

    from edge_app.config import AppConfig

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("<!-- SECTION:config -->"):readme.index("<!-- /SECTION:config -->")]
    example = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert example, "README's config section lost its YAML example"
    config = AppConfig.model_validate(yaml.safe_load(example.group(1)))
    assert config.model.batch_size == 4 and config.streams[0].roi is not None


@pytest.mark.parametrize(("pin", "backend", "threads", "expect_plan"), [
    (False, "onnxruntime", 1, False),  # the default: the scheduler places threads
    (True, "onnxruntime", 1, True),
    (True, "tensorrt", 1, False),  # inference is on the GPU: nothing to keep the CPU cores apart for
    (True, "onnxruntime", 64, False),  # no core left over for the background threads
])
def test_core_plan_follows_pipeline_pin_threads(tmp_path: Path, pin: bool, backend: str, threads: int,
                                                expect_plan: bool) -> None:
    import os

    from edge_app.app import EdgeApp
    from edge_app.config import AppConfig

    if len(os.sched_getaffinity(0)) < 2 and expect_plan:
        pytest.skip("needs at least 2 cores")
    cfg = AppConfig.model_validate({
        "model": {"path": str(tmp_path / "m.onnx"), "backend": backend},
        "streams": [{"name": "cam", "uri": "video.mp4"}],
        "pipeline": {"pin_threads": pin, "inference_threads": threads},
    })
    plan = EdgeApp(cfg)._core_plan()
    assert (plan is not None) == expect_plan
    if plan is not None:
        assert len(plan.inference) == threads and plan.inference.isdisjoint(plan.background)

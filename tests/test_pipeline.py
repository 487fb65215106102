"""Unit tests of the multi-stream pipeline: queues, batcher, metrics, shutdown (no model, no video)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from edge_app.detections import Detections
from edge_app.frame import Frame
from edge_app.pipeline import DropOldestQueue, DynamicBatcher, Pipeline, QueueClosed
from edge_app.pipeline.metrics import LatencyWindow, PipelineMetrics, RateMeter

IMAGE = np.zeros((8, 8, 3), np.uint8)


# -- queues ---------------------------------------------------------------------------------------
def test_drop_oldest_queue_keeps_newest_and_counts_drops() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(3)
    evicted = [q.put(i) for i in range(7)]
    assert evicted == [None, None, None, 0, 1, 2, 3]
    assert q.dropped == 4 and q.accepted == 7
    assert [q.pop_nowait() for _ in range(4)] == [4, 5, 6, None]


def test_blocking_put_waits_for_space_instead_of_dropping() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(2)
    producer = threading.Thread(target=lambda: [q.put(i, block=True) for i in range(50)])
    producer.start()
    got = []
    while len(got) < 50:
        item = q.get(timeout=5)
        assert item is not None
        got.append(item)
    producer.join(5)
    assert got == list(range(50)) and q.dropped == 0


def test_closed_queue_rejects_puts_and_drains() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(2)
    q.put(1)
    q.close()
    with pytest.raises(QueueClosed):
        q.put(2)
    assert not q.finished
    assert q.get(timeout=1) == 1
    assert q.finished and q.get(timeout=1) is None


# -- batcher --------------------------------------------------------------------------------------
def test_batcher_respects_max_batch_round_robin_and_per_stream_order() -> None:
    batcher: DynamicBatcher[tuple[str, int]] = DynamicBatcher(max_batch=4, max_wait_s=0.0)
    queues = {name: batcher.add_queue(name, 100) for name in "abc"}
    for name, q in queues.items():
        for i in range(10):
            q.put((name, i))
        q.close()
    batches = []
    while batch := batcher.next_batch():
        batches.append(batch)
    assert all(len(b) <= 4 for b in batches)
    assert sum(len(b) for b in batches) == 30
    assert len(batches) == 8  # ceil(30 / 4): full batches while frames are waiting
    first = batches[0]
    assert {name for name, _ in first[:3]} == {"a", "b", "c"}  # one per stream per round
    for name in "abc":
        seen = [i for b in batches for n, i in b if n == name]
        assert seen == list(range(10))


def test_batcher_returns_a_partial_batch_after_max_wait() -> None:
    batcher: DynamicBatcher[int] = DynamicBatcher(max_batch=4, max_wait_s=0.05)
    q = batcher.add_queue("a", 10)
    q.put(1)
    assert batcher.next_batch() == [1]  # did not wait for 3 frames that never come


def test_batcher_waits_for_frames_arriving_within_max_wait() -> None:
    batcher: DynamicBatcher[int] = DynamicBatcher(max_batch=2, max_wait_s=30.0)
    q = batcher.add_queue("a", 10)
    q.put(1)
    threading.Timer(0.05, lambda: q.put(2)).start()
    assert batcher.next_batch() == [1, 2]  # the full batch ends the wait, not the 30 s


def test_batcher_with_zero_wait_takes_what_is_there() -> None:
    batcher: DynamicBatcher[int] = DynamicBatcher(max_batch=8, max_wait_s=0.0)
    a, b = batcher.add_queue("a", 10), batcher.add_queue("b", 10)
    a.put(1)
    b.put(2)
    assert sorted(batcher.next_batch()) == [1, 2]


def test_batcher_stop_wakes_a_waiting_consumer() -> None:
    batcher: DynamicBatcher[int] = DynamicBatcher(max_batch=2, max_wait_s=0.0)
    batcher.add_queue("a", 10)
    result: list[list[int]] = []
    consumer = threading.Thread(target=lambda: result.append(batcher.next_batch()))
    consumer.start()
    batcher.stop()
    consumer.join(5)
    assert not consumer.is_alive() and result == [[]]


def test_batcher_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        DynamicBatcher(0, 0.0)
    with pytest.raises(ValueError):
        DynamicBatcher(1, -1.0)


# -- metrics --------------------------------------------------------------------------------------
def test_latency_window_percentiles_in_ms() -> None:
    window = LatencyWindow(size=100)
    assert window.percentiles_ms(50, 95) == [None, None]
    for ms in range(1, 201):  # only the last 100 (101..200 ms) are kept
        window.add(ms / 1000)
    p50, p95 = window.percentiles_ms(50, 95)
    assert p50 == pytest.approx(150.5, abs=0.01)
    assert p95 == pytest.approx(195.05, abs=0.01)


def test_rate_meter_measures_recent_rate_and_falls_to_zero() -> None:
    meter = RateMeter(window_s=2.0)
    for i in range(100):
        meter.tick(now=10.0 + i * 0.1)  # 10 fps for 10 s
    assert meter.rate(now=19.9) == pytest.approx(10.0, rel=0.06)
    assert meter.rate(now=40.0) == 0.0


def test_pipeline_metrics_snapshot_per_stream() -> None:
    metrics = PipelineMetrics(["a", "b"])
    metrics.streams["a"].frame_in()
    metrics.streams["a"].frame_done(decoded_at=1.0, now=1.25)
    metrics.record_batch(4, 0.04)
    snap = metrics.snapshot()
    assert snap["streams"]["a"]["frames"] == 1 and snap["streams"]["b"]["frames"] == 0
    assert snap["streams"]["a"]["latency_ms"]["p50"] == 250.0
    assert snap["inference_latency_ms"]["p50"] == 40.0 and snap["mean_batch_size"] == 4.0


# -- the whole pipeline with a fake detector -------------------------------------------------------
class CountingDetector:
    """Returns one box per frame whose score encodes the frame index (so results can be traced)."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.batch_sizes: list[int] = []
        self.fail_after = fail_after

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        self.batch_sizes.append(len(images))
        if self.fail_after is not None and sum(self.batch_sizes) > self.fail_after:
            raise RuntimeError("device lost")
        return [Detections(np.array([[0, 0, 1, 1]]), np.array([float(img[0, 0, 0])]), np.array([0])) for img in images]


def file_frames(name: str, n: int) -> list[Frame]:
    return [Frame(name, i, i / 25, np.full((8, 8, 3), i % 256, np.uint8)) for i in range(n)]


def live_frames(name: str, stop: threading.Event) -> Iterator[Frame]:
    for i in itertools.count():
        if stop.is_set():
            return
        time.sleep(0.001)
        yield Frame(name, i, time.time(), IMAGE, live=True)


def test_file_streams_are_processed_completely_in_order() -> None:
    seen: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    sources = {name: file_frames(name, 40) for name in seen}
    handlers = {name: (lambda f, d, name=name: seen[name].append(f.index)) for name in seen}
    detector = CountingDetector()
    pipeline = Pipeline(sources, [detector], handlers, max_batch=4, max_wait_s=0.001, queue_size=2)
    pipeline.run()
    assert all(indexes == list(range(40)) for indexes in seen.values())
    assert max(detector.batch_sizes) <= 4 and sum(detector.batch_sizes) == 120
    assert all(m.dropped == 0 and m.frames_done == 40 for m in pipeline.metrics.streams.values())
    assert all(pipeline.ended_by_itself(name) for name in seen)  # end of file: counters close the last bin
    assert not any(t.is_alive() for t in pipeline.threads)


def test_stop_shuts_down_live_streams_and_joins_every_thread() -> None:
    source_stop = threading.Event()
    names = ["cam1", "cam2"]
    done: list[Frame] = []
    pipeline = Pipeline(
        {n: live_frames(n, source_stop) for n in names},
        [CountingDetector(), CountingDetector()],  # two "devices"
        {n: (lambda f, d: done.append(f)) for n in names},
        max_batch=2,
        queue_size=2,
        stoppers=[source_stop.set],
    )
    pipeline.start()
    while len(done) < 20:
        time.sleep(0.01)
    pipeline.stop()
    assert pipeline.join(timeout=10)
    assert not any(t.is_alive() for t in pipeline.threads)
    assert len(pipeline.threads) == 2 + 2 + 2 + 2  # decoders, stackers, workers, post-processors
    assert not any(pipeline.ended_by_itself(n) for n in names)  # stopped: counters save state mid-bin


def test_live_overload_drops_oldest_frames_and_reports_them() -> None:
    source_stop = threading.Event()
    release = threading.Event()

    class SlowDetector(CountingDetector):
        def detect(self, images: list[np.ndarray]) -> list[Detections]:
            release.wait(5)  # inference stalls: frames pile up and must be dropped
            return super().detect(images)

    pipeline = Pipeline(
        {"cam": live_frames("cam", source_stop)}, [SlowDetector()], {"cam": lambda f, d: None},
        max_batch=1, queue_size=3, stoppers=[source_stop.set],
    )
    pipeline.start()
    while pipeline.metrics.streams["cam"].frames_in < 50:
        time.sleep(0.01)
    release.set()
    pipeline.stop()
    assert pipeline.join(timeout=10)
    stats = pipeline.metrics.streams["cam"]
    assert stats.dropped >= 50 - 3 - 1 - 1  # all but the queue's 3, the one in inference, one in flight
    assert stats.frames_done + stats.dropped <= stats.frames_in


def test_a_failing_detector_stops_the_pipeline_and_raises() -> None:
    pipeline = Pipeline(
        {"a": file_frames("a", 100)}, [CountingDetector(fail_after=10)], {"a": lambda f, d: None}, max_batch=2
    )
    with pytest.raises(RuntimeError, match="device lost"):
        pipeline.run()
    assert not any(t.is_alive() for t in pipeline.threads)


def test_a_failing_handler_stops_the_pipeline_and_raises() -> None:
    def handler(frame: Frame, detections: Detections) -> None:
        if frame.index == 5:
            raise ValueError("bad frame")

    pipeline = Pipeline({"a": file_frames("a", 200)}, [CountingDetector()], {"a": handler})
    with pytest.raises(ValueError, match="bad frame"):
        pipeline.run()
    assert not any(t.is_alive() for t in pipeline.threads)


def test_a_frame_that_cannot_be_prepared_is_skipped_not_fatal() -> None:
    def prepare(frame: Frame) -> Frame:
        if frame.index == 3:
            raise ValueError("malformed image")
        return frame

    seen: list[int] = []
    pipeline = Pipeline({"a": file_frames("a", 10)}, [CountingDetector()], {"a": lambda f, d: seen.append(f.index)},
                        prepare={"a": prepare})
    pipeline.run()
    assert seen == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert pipeline.ended_by_itself("a")


def test_decode_stack_and_postprocess_threads_run_at_lower_priority_than_inference() -> None:
    import os

    def nice_now() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    seen: dict[str, int] = {}

    def source():  # noqa: ANN202 - runs on the decode thread
        seen["decode"] = nice_now()
        yield from file_frames("cam", 3)

    class NiceRecordingDetector(CountingDetector):
        def detect(self, images):  # noqa: ANN001, ANN202
            seen["inference"] = nice_now()
            return super().detect(images)

    def handler(frame: Frame, detections: Detections) -> None:
        seen["post"] = nice_now()

    for background_nice in (4, 0):
        seen.clear()
        release = threading.Event()

        def held_source(release: threading.Event = release):  # noqa: ANN202 - open until the stacker is read
            release.wait(10)
            yield from source()

        pipeline = Pipeline({"cam": held_source()}, [NiceRecordingDetector()], {"cam": handler},
                            background_nice=background_nice)
        pipeline.start()
        stacker = next(t for t in pipeline.threads if t.name.startswith("stack-"))
        deadline = time.monotonic() + 5
        while os.getpriority(os.PRIO_PROCESS, stacker.native_id) == nice_now() and background_nice and \
                time.monotonic() < deadline:
            time.sleep(0.01)  # the thread lowers its own priority as it starts
        seen["stack"] = os.getpriority(os.PRIO_PROCESS, stacker.native_id)
        release.set()
        assert pipeline.join(timeout=10)
        assert seen["inference"] == nice_now()
        assert seen["decode"] == seen["post"] == seen["stack"] == min(19, nice_now() + background_nice)


def test_core_plan_pins_inference_and_background_threads_to_separate_cores() -> None:
    import os

    from edge_app.pipeline.cpu import CorePlan

    plan = CorePlan.split(1)
    if plan is None:
        pytest.skip("needs at least 2 cores")
    assert plan.inference.isdisjoint(plan.background) and len(plan.inference) == 1
    assert plan.inference | plan.background == set(os.sched_getaffinity(0))
    assert CorePlan.split(len(os.sched_getaffinity(0))) is None  # no core left over: nothing to pin
    seen: dict[str, set[int]] = {}

    def source():  # noqa: ANN202 - runs on the decode thread
        seen["decode"] = os.sched_getaffinity(0)
        yield from file_frames("cam", 3)

    class AffinityRecordingDetector(CountingDetector):
        def detect(self, images):  # noqa: ANN001, ANN202
            seen["inference"] = os.sched_getaffinity(0)
            return super().detect(images)

    def handler(frame: Frame, detections: Detections) -> None:
        seen["post"] = os.sched_getaffinity(0)

    Pipeline({"cam": source()}, [AffinityRecordingDetector()], {"cam": handler}, core_plan=plan).run()
    assert seen["inference"] == plan.inference
    assert seen["decode"] == seen["post"] == plan.background
    assert os.sched_getaffinity(0) == plan.inference | plan.background  # the caller's own thread is untouched

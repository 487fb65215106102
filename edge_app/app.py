"""`edge-app run`: every configured stream through detection, ROI, counting and publishing.

Start-up order matters: the publisher opens first because its durable outbox holds the counter states
(restored before the first frame, so the global count resumes after a restart); then the detector
(a missing model fails fast, before cameras are opened); then the sources.

Shutdown (end of the files, SIGINT or SIGTERM) in the reverse order: the pipeline drains and joins its
threads; each counter commits its state (a file that ended also closes its last bin); the publisher
gets a bounded time to deliver the backlog (what it cannot deliver stays in the outbox for the next
start); then the summary is printed. A broker that is down only delays delivery: counting never waits
for the network, because commits go to the local outbox.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from edge_app.config import AppConfig, StreamConfig, load_config
from edge_app.errors import EdgeAppError
from edge_app.frame import Frame
from edge_app.health import HealthReporter
from edge_app.pipeline import Pipeline
from edge_app.roi import Roi
from edge_app.stream_processor import StreamProcessor
from edge_app.summary import StreamSummary, attach_truth, format_table

log = logging.getLogger("edge_app")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
STOP_GRACE_S = 15.0
"""After SIGINT/SIGTERM, how long the app waits for its threads before saving states and exiting anyway."""
UNTRAINED_BANNER = (
    "THIS RUN USES AN UNTRAINED MODEL ({version}): detections are random and the counts are meaningless. "
    "Train one with `make model` (or wait for models/tray_detector.onnx) for real counts."
)


def setup_logging(level: str) -> None:
    """Log lines to stderr (stdout carries the summary, so scripts can parse it)."""
    name = level.upper()
    if name not in LOG_LEVELS:
        raise EdgeAppError(f"--log-level: expected one of {', '.join(LOG_LEVELS)} (got {level!r})")
    logging.basicConfig(level=name, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")


def is_untrained(model_version: str) -> bool:
    return "untrained" in model_version.lower()


class SerializedPublisher:
    """One lock around the publisher: streams commit from their own threads, the heartbeat from its own."""

    def __init__(self, publisher: Any) -> None:
        self.publisher = publisher
        self._lock = threading.Lock()

    def start(self) -> None:
        self.publisher.start()

    def restore_counter_states(self) -> dict[str, dict]:
        with self._lock:
            return self.publisher.restore_counter_states()

    def commit(self, events: Any, counter_states: dict[str, dict] | None = None) -> None:
        with self._lock:
            self.publisher.commit(events, counter_states)

    def publish_health(self, health: dict) -> None:
        with self._lock:
            self.publisher.publish_health(health)

    def stop(self, timeout: float = 5.0) -> bool:
        with self._lock:
            flushed = bool(self.publisher.stop(timeout))
        if not flushed:
            log.warning("publisher: not everything was delivered before shutdown; the rest stays in the outbox "
                        "and is sent after the next start")
        return flushed


class EdgeApp:
    """One run of the app; :meth:`run` returns the per-stream summaries."""

    def __init__(self, cfg: AppConfig, *, record_detections: Path | None = None, annotate_dir: Path | None = None,
                 max_frames: int | None = None, dashboard: Any = None) -> None:
        self.cfg = cfg
        self.dashboard = dashboard
        """`edge_app.dashboard.options.DashboardOptions` when ``--dashboard`` serves the local web page."""
        self.record_detections = record_detections
        self.annotate_dir = annotate_dir
        self.max_frames = max_frames
        self.started = time.monotonic()
        self.pipeline: Pipeline | None = None
        self.model_version = "unknown"
        self._stop_requested = threading.Event()
        self._stop_deadline: float | None = None

    # -- building blocks --------------------------------------------------------------------------
    def _core_plan(self) -> Any:
        """Separate cores for ONNX Runtime inference and the background threads, when configured and possible."""
        from edge_app.pipeline.cpu import CorePlan, default_inference_threads

        pc = self.cfg.pipeline
        if not pc.pin_threads or self.cfg.model.backend != "onnxruntime":
            return None
        plan = CorePlan.split(pc.inference_threads or default_inference_threads())
        if plan is not None:
            log.info("threads: inference on core(s) %s, decoding and counting on %s", sorted(plan.inference),
                     sorted(plan.background))
        return plan

    def _detector(self) -> Any:
        """The configured backend, wrapped so frames are preprocessed on the decode threads.

        ONNX Runtime gets ``pipeline.inference_threads`` (default: cores - 1, see `pipeline.cpu`) and
        ``pipeline.ort_optimization``; if the full optimisation cannot handle a graph, the basic one is used.
        """
        from edge_app.detectors import create_detector
        from edge_app.pipeline.cpu import default_inference_threads
        from edge_app.pipeline.split import prepared

        pc = self.cfg.pipeline
        options = {"intra_op_threads": pc.inference_threads or default_inference_threads(),
                   "optimization": pc.ort_optimization}
        try:
            detector = create_detector(self.cfg.model, **options)
        except EdgeAppError as exc:
            if (pc.ort_optimization == "basic" or self.cfg.model.backend != "onnxruntime"
                    or not Path(self.cfg.model.path).is_file()):
                raise
            log.warning("model: full ONNX Runtime optimisation failed (%s); retrying with the basic level", exc)
            detector = create_detector(self.cfg.model, **{**options, "optimization": "basic"})
        self.model_version = str(getattr(detector, "model_version", "unknown"))
        if is_untrained(self.model_version):
            log.warning(UNTRAINED_BANNER.format(version=self.model_version))
        return prepared(detector)

    def _counter(self, stream: StreamConfig, saved: dict | None) -> Any:
        from edge_app.counter import BinCounter

        if saved is None:
            return BinCounter(stream.name, stream.line_id, stream.counter)
        try:
            counter = BinCounter.restore(stream.name, stream.line_id, stream.counter, saved)
        except (ValueError, KeyError, TypeError) as exc:
            raise EdgeAppError(f"{self.cfg.state_dir}: counter state of stream {stream.name!r}: {exc} "
                               "(move the state folder aside to start counting from zero)") from None
        log.info("stream %s: resumed counting: global %d, %d bins, bin %d in progress (%d trays)",
                 stream.name, counter.global_count, len(counter.bins), counter.bin_id, counter.local)
        return counter

    @staticmethod
    def _masker(roi: Roi) -> Any:
        def mask(frame: Frame) -> Frame:
            return replace(frame, image=roi.mask(frame.image))

        return mask

    def health(self, detector: Any, sources: dict[str, Any]) -> dict:
        """The heartbeat payload: uptime, per-stream fps/drops/latency, inference latency, model version."""
        assert self.pipeline is not None
        snap = self.pipeline.metrics.snapshot()
        for name, stream in snap["streams"].items():
            stats = getattr(sources[name], "stats", None)
            if stats is not None:  # drops inside a live source's own buffer count too
                stream["dropped_frames"] += int(getattr(stats, "frames_dropped", 0))
                stream["connected"] = bool(getattr(stats, "connected", True))
                stream["reconnects"] = int(getattr(stats, "reconnects", 0))
                stream["corrupt_skipped"] = int(getattr(stats, "corrupt_skipped", 0))
        return {"uptime_s": round(time.monotonic() - self.started, 1), "model_version": self.model_version, **snap}

    # -- the run ----------------------------------------------------------------------------------
    def request_stop(self, reason: str = "") -> None:
        if not self._stop_requested.is_set():
            log.info("stopping%s: finishing frames in flight and saving counter states", f" ({reason})" if reason
                     else "")
        self._stop_requested.set()
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + STOP_GRACE_S
        if self.pipeline is not None:
            self.pipeline.stop()

    def run(self) -> list[StreamSummary]:
        from edge_app.publish import EventPublisher
        from edge_app.sources import open_source

        cfg = self.cfg
        with ExitStack() as stack:
            publisher = SerializedPublisher(EventPublisher(cfg))
            saved_states = publisher.restore_counter_states()
            publisher.start()  # connects in the background; never blocks on the broker
            stack.callback(publisher.stop)
            detector = self._detector()

            sources: dict[str, Any] = {}
            for stream in cfg.streams:
                sources[stream.name] = open_source(stream, max_frames=self.max_frames)
                stack.callback(sources[stream.name].close)

            recorder, recorder_lock = None, threading.Lock()
            if self.record_detections is not None:
                from edge_app.replay import ReplayWriter

                recorder = ReplayWriter(self.record_detections)
                stack.callback(recorder.close)

            processors: dict[str, StreamProcessor] = {}
            prepare = {}
            start_counts: dict[str, int] = {}
            for stream in cfg.streams:
                roi = Roi.from_config(stream)
                counter = self._counter(stream, saved_states.get(stream.name))
                start_counts[stream.name] = len(counter.bins)
                annotator = None
                if self.annotate_dir is not None:
                    from edge_app.annotate import AnnotatedVideoWriter

                    annotator = AnnotatedVideoWriter(self.annotate_dir, stream.name,
                                                     float(getattr(sources[stream.name], "fps", 25.0) or 25.0))
                processors[stream.name] = StreamProcessor(
                    stream.name, counter, roi, publisher, score_threshold=cfg.model.score_threshold,
                    count_classes=cfg.model.count_classes, recorder=recorder, recorder_lock=recorder_lock,
                    annotator=annotator, fps=self._fps_reader(stream.name),
                )
                stack.callback(processors[stream.name].close)
                if stream.mask_outside_roi and not roi.is_everything:
                    prepare[stream.name] = self._masker(roi)

            pc = cfg.pipeline
            handlers: dict[str, Any] = dict(processors)
            if self.dashboard is not None:  # local web dashboard: taps events, frames and health (issue 11)
                from edge_app.dashboard.runtime import attach_dashboard

                handlers = attach_dashboard(self.dashboard, cfg, processors, publisher,
                                            lambda: self.health(detector, sources), stack)
            if cfg.inspections:  # visual anomaly inspection of the same frames (issue 8)
                from edge_app.anomaly.inspector import AnomalyInspector
                from edge_app.inspection import TriggerListener, wrap_handlers

                inspectors = AnomalyInspector.from_app_config(cfg)
                handlers = wrap_handlers(handlers, inspectors, publisher)
                triggers = TriggerListener(cfg, inspectors)
                triggers.start()
                stack.callback(triggers.stop)
            self.pipeline = Pipeline(
                sources, [detector], handlers,
                max_batch=max(1, min(cfg.model.batch_size, int(getattr(detector, "max_batch", 1)))),
                max_wait_s=pc.max_wait_ms / 1000.0, queue_size=pc.queue_size, prepare=prepare,
                stoppers=[s.stop for s in sources.values()], background_nice=pc.background_nice,
                core_plan=self._core_plan(), stack_ahead=pc.stack_ahead,
            )
            if self._stop_requested.is_set():  # a signal arrived while starting up
                return []
            heartbeat = HealthReporter(pc.health_interval_s, lambda: self.health(detector, sources),
                                       publisher.publish_health)
            log.info("running %d stream(s): %s", len(sources), ", ".join(sources))
            self.pipeline.start()
            heartbeat.start()
            error: BaseException | None = None
            try:
                self._wait_for_pipeline()
            except BaseException as exc:  # noqa: BLE001 - states are still saved below, then re-raised
                error = exc
            finally:
                heartbeat.stop()
                self._save_counters(processors)
                heartbeat.beat()  # a last heartbeat with the final figures
            if error is not None:
                raise error
            return self._summaries(processors, start_counts, sources)

    def _wait_for_pipeline(self) -> None:
        """Until every thread ends, or - after a stop request - at most `STOP_GRACE_S` seconds.

        A camera read that hangs past its own watchdog must not keep the process from saving the counter
        states and exiting: after the grace period the remaining (daemon) threads are abandoned.
        """
        assert self.pipeline is not None
        while not self.pipeline.join(timeout=0.5):
            if self._stop_deadline is not None and time.monotonic() > self._stop_deadline:
                stuck = [t.name for t in self.pipeline.threads if t.is_alive()]
                log.warning("shutdown: threads still running after %.0f s, abandoned: %s", STOP_GRACE_S,
                            ", ".join(stuck))
                return

    def _fps_reader(self, stream: str) -> Any:
        def fps() -> float:
            return self.pipeline.metrics.streams[stream].fps_meter.rate() if self.pipeline else 0.0

        return fps

    def _save_counters(self, processors: dict[str, StreamProcessor]) -> None:
        assert self.pipeline is not None
        for name, processor in processors.items():
            try:
                if self.pipeline.ended_by_itself(name):
                    processor.finish()
                else:
                    processor.save_state()
            except Exception:  # noqa: BLE001 - one stream's failure must not lose the others' states
                log.exception("stream %s: saving the counter state failed", name)

    def _summaries(self, processors: dict[str, StreamProcessor], start_counts: dict[str, int],
                   sources: dict[str, Any]) -> list[StreamSummary]:
        assert self.pipeline is not None
        summaries = []
        for stream in self.cfg.streams:
            proc = processors[stream.name]
            metrics = self.pipeline.metrics.streams[stream.name]
            bins = list(proc.counter.bins[start_counts[stream.name]:])
            summary = StreamSummary(
                stream=stream.name, frames=proc.frames, fps=round(metrics.average_fps(), 2), trays=sum(bins),
                bins=bins, global_count=proc.counter.global_count, dropped=metrics.dropped,
            )
            if not getattr(sources[stream.name], "live", False):
                attach_truth(summary, stream.uri)
            summaries.append(summary)
        return summaries


@contextmanager
def stop_on_signals(app: EdgeApp) -> Iterator[None]:
    """SIGINT/SIGTERM ask for a clean stop; a second one gets the default (immediate) behaviour."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, _frame: object) -> None:
        signal.signal(signum, previous[signum] if signum != signal.SIGINT else signal.default_int_handler)
        app.request_stop(signal.Signals(signum).name)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_from_cli(config_path: Path, *, record_detections: Path | None = None, annotate: Path | None = None,
                 log_level: str | None = None, max_frames: int | None = None, dashboard_port: int | None = None,
                 dashboard_host: str | None = None, dashboard_token: str | None = None) -> list[StreamSummary]:
    """`edge-app run`: prints a table and, as the last stdout line, ``{"streams": {name: {...}}}``."""
    cfg = load_config(config_path)
    from edge_app.dashboard.options import resolve_options

    dashboard = resolve_options(cfg, config_path, port=dashboard_port, host=dashboard_host, token=dashboard_token)
    setup_logging(log_level or cfg.log_level)
    if max_frames is not None and max_frames < 1:
        raise EdgeAppError(f"--max-frames: expected a positive number of frames (got {max_frames})")
    app = EdgeApp(cfg, record_detections=record_detections or cfg.output.record_detections,
                  annotate_dir=annotate or cfg.output.annotated_video_dir, max_frames=max_frames,
                  dashboard=dashboard)
    with stop_on_signals(app):
        summaries = app.run()
    if is_untrained(app.model_version):
        print(UNTRAINED_BANNER.format(version=app.model_version))
    if summaries:
        print(format_table(summaries))
        print(json.dumps({"streams": {s.stream: s.to_json() for s in summaries}}))
    sys.stdout.flush()
    return summaries

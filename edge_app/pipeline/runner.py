"""`Pipeline`: wires decode threads, the dynamic batcher, inference workers and post-processing threads.

::

    source ─► DecodeThread ─► DropOldestQueue ─┐
    source ─► DecodeThread ─► DropOldestQueue ─┼─► DynamicBatcher ─► StackAhead ─► InferenceWorker (per device)
    source ─► DecodeThread ─► DropOldestQueue ─┘                                         │
                         PostProcessThread (per stream: ROI, counter, events, publish) ◄─────────┘

Shutdown, the clean way round (so no frame is half-processed and every thread is joined):

* natural end (files): each decoder closes its queue when its file ends; the batcher returns an empty
  batch once all queues are closed and drained; workers exit; then the post-processing threads get an
  end marker after the last result and exit;
* :meth:`Pipeline.stop` (SIGINT/SIGTERM, or a failure in any thread): sources are told to stop,
  queues are closed (frames still waiting for inference are abandoned), workers finish their current
  batch, and post-processing drains the results already computed. The caller then commits state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from edge_app.detections import Detections
from edge_app.frame import Frame
from edge_app.pipeline.batcher import DynamicBatcher
from edge_app.pipeline.cpu import DEFAULT_BACKGROUND_NICE, CorePlan, Placement, single_threaded_opencv
from edge_app.pipeline.decode import DecodeThread
from edge_app.pipeline.jobs import BatchDetector, Job
from edge_app.pipeline.metrics import PipelineMetrics
from edge_app.pipeline.postprocess import FrameHandler, PostProcessThread
from edge_app.pipeline.split import PendingDetections, PreparedDetector
from edge_app.pipeline.stacking import InlineStacking, StackAhead
from edge_app.pipeline.worker import BatchFeed, InferenceWorker

log = logging.getLogger(__name__)


class Pipeline:
    """Runs ``sources`` through ``detectors`` into ``handlers``, one handler per stream.

    ``detectors``: one per device (each gets its own inference worker sharing the batcher); wrap them
    with `split.prepared` so frames are preprocessed on the decode threads.
    ``prepare``: optional per-stream frame transform run on the decode thread (ROI masking).
    ``stoppers``: callables that interrupt a blocking source (e.g. ``VideoSource.stop``).
    ``background_nice``: how many nice levels below the inference workers the decode and post-processing
    threads run (`cpu.lower_thread_priority`); 0 runs every thread at the same priority.
    ``core_plan``: pin the inference workers and the background threads to separate cores (`cpu.CorePlan`);
    None leaves placement to the scheduler.
    ``stack_ahead``: stack each worker's next batch on a background thread while it runs the current one
    (`stacking.StackAhead`); False stacks on the inference thread.
    """

    def __init__(
        self,
        sources: Mapping[str, Iterable[Frame]],
        detectors: Sequence[BatchDetector],
        handlers: Mapping[str, FrameHandler],
        *,
        max_batch: int = 4,
        max_wait_s: float = 0.01,
        queue_size: int = 4,
        prepare: Mapping[str, Callable[[Frame], Frame]] | None = None,
        stoppers: Sequence[Callable[[], None]] = (),
        background_nice: int = DEFAULT_BACKGROUND_NICE,
        core_plan: CorePlan | None = None,
        stack_ahead: bool = True,
    ) -> None:
        if set(sources) != set(handlers):
            raise ValueError("every stream needs exactly one handler")
        if not detectors:
            raise ValueError("at least one detector (device) is needed")
        self.metrics = PipelineMetrics(list(sources))
        self.batcher: DynamicBatcher[Job] = DynamicBatcher(max_batch, max_wait_s)
        self._stop_event = threading.Event()
        self._stoppers = list(stoppers)
        self._errors: list[BaseException] = []
        self._errors_lock = threading.Lock()
        prepare = prepare or {}
        background = Placement(background_nice, core_plan.background if core_plan else None)
        foreground = Placement(0, core_plan.inference if core_plan else None)
        # All devices run the same model, so the first one's preprocessing serves every batch.
        preprocess = detectors[0].preprocess if isinstance(detectors[0], PreparedDetector) else None
        self._post = {
            name: PostProcessThread(name, handlers[name], self.metrics.streams[name], on_error=self._fail,
                                    placement=background)
            for name in sources
        }
        self._decoders = [
            DecodeThread(
                name,
                source,
                self.batcher.add_queue(name, queue_size),
                self.metrics.streams[name],
                self._stop_event,
                prepare=prepare.get(name),
                preprocess=preprocess,
                on_error=self._fail,
                placement=background,
            )
            for name, source in sources.items()
        ]
        self._stackers = [StackAhead(f"dev{i}", self.batcher, placement=background)
                          for i in range(len(detectors)) if stack_ahead]
        feeds: list[BatchFeed] = [*self._stackers] or [InlineStacking(self.batcher) for _ in detectors]
        self._workers = [
            InferenceWorker(f"dev{i}", feed, detector, self._deliver, self.metrics, on_error=self._fail,
                            placement=foreground)
            for i, (feed, detector) in enumerate(zip(feeds, detectors, strict=True))
        ]
        self._started = False
        self._post_finished = False

    # -- wiring -----------------------------------------------------------------------------------
    def _deliver(self, job: Job, detections: Detections | PendingDetections) -> None:
        self._post[job.frame.stream].submit(job, detections)

    def _fail(self, exc: BaseException) -> None:
        with self._errors_lock:
            self._errors.append(exc)
        self.stop()

    @property
    def threads(self) -> list[threading.Thread]:
        return [*self._decoders, *self._stackers, *self._workers, *self._post.values()]

    def ended_by_itself(self, stream: str) -> bool:
        """Did this stream's source end on its own (end of file), rather than being stopped?"""
        return any(d.exhausted for d in self._decoders if d.metrics.name == stream)

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._started:
            raise RuntimeError("pipeline already started")
        self._started = True
        single_threaded_opencv()
        self.metrics.mark_start()
        for thread in [*self._post.values(), *self._workers, *self._stackers, *self._decoders]:
            thread.start()

    def stop(self) -> None:
        """Ask everything to wind down (idempotent, callable from any thread or a signal handler)."""
        if self._stop_event.is_set():
            return
        self._stop_event.set()
        for stop_source in self._stoppers:
            try:
                stop_source()
            except Exception:  # noqa: BLE001 - stopping must go on for the other sources
                log.exception("stopping a source failed")
        for queue in self.batcher.queues.values():
            queue.close()
        self.batcher.stop()

    def join(self, timeout: float | None = None, poll_s: float = 0.2) -> bool:
        """Wait for the pipeline to finish; True when every thread has ended.

        Joins in short slices so the main thread keeps handling signals. Raises the first error any
        thread reported, after everything has shut down.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._join_all(self._workers, deadline, poll_s):
            return False
        if not self._post_finished:
            self._post_finished = True
            for post in self._post.values():
                post.finish()
        done = self._join_all([*self._post.values(), *self._stackers, *self._decoders], deadline, poll_s)
        if done and self._errors:
            raise self._errors[0]
        return done

    @staticmethod
    def _join_all(threads: Iterable[threading.Thread], deadline: float | None, poll_s: float) -> bool:
        for thread in threads:
            while thread.is_alive():
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                thread.join(poll_s)
        return True

    def run(self) -> None:
        """Start and wait for the end (files) or for :meth:`stop`."""
        self.start()
        self.join()

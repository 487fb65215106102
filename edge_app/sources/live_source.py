"""Live sources (RTSP/HTTP cameras, USB devices): a decode thread, reconnection with back-off, a watchdog.

Threads, and why:

* a **session** thread owns one ``cv2.VideoCapture`` for its whole life: it opens it, reads frames
  into a small drop-oldest buffer and releases it. OpenCV captures are not safe to release from
  another thread while a read is blocked, so nobody else ever touches it;
* a **supervisor** thread starts sessions, waits with exponential back-off between them and runs the
  watchdog: if a session has been blocked in ``open``/``read`` longer than the timeout (a stalled
  stream: TCP still up, no data), it is *abandoned* — marked so it releases its capture and exits
  whenever the blocked call returns — and a new session is started at once. FFMPEG normally returns on
  its own thanks to ``CAP_PROP_READ_TIMEOUT_MSEC``; the watchdog is the guarantee for backends without
  timeouts (V4L2) or drivers that ignore them.

The consumer iterates in its own thread and waits on a condition variable with a short timeout, so
:meth:`stop` ends iteration within ~0.25 s even while the supervisor sleeps between retries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from edge_app.config import StreamConfig
from edge_app.frame import Frame
from edge_app.sources.backoff import Backoff
from edge_app.sources.base import VideoSource
from edge_app.sources.capture import ParsedUri, is_valid_image, open_capture, redact_uri
from edge_app.sources.options import SourceOptions

log = logging.getLogger(__name__)

_POLL_S = 0.25

CaptureOpener = Callable[[], Any]
"""Returns an opened capture (with ``read()`` and ``release()``) or None; may block."""


class _Session(threading.Thread):
    """One connection attempt and its reads. Owns its capture; see the module docstring."""

    def __init__(self, name: str, opener: CaptureOpener, options: SourceOptions,
                 on_opened: Callable[[_Session], None], on_frame: Callable[[_Session, np.ndarray], None],
                 on_corrupt: Callable[[int], None]) -> None:
        super().__init__(name=f"source-{name}", daemon=True)
        self._opener = opener
        self._max_read_failures = options.max_read_failures
        self._read_timeout_s = options.read_timeout_s
        self._on_opened = on_opened
        self._on_frame = on_frame
        self._on_corrupt = on_corrupt
        self.opened = threading.Event()
        self.ended = threading.Event()
        self.abandoned = threading.Event()
        self.busy_since: float | None = None
        """Monotonic time the current blocking open/read started (None between calls)."""
        self.connected_at: float | None = None
        """Monotonic time the capture opened (set before the first read, so stats never lag frames)."""
        self.error: str | None = None
        self.stalled = False
        """True if an open or read blocked for its timeout (noticed by the backend or by the watchdog)."""
        self.reported_fps: float | None = None

    def run(self) -> None:
        cap = None
        try:
            self.busy_since = time.monotonic()
            cap = self._opener()
            self.busy_since = None
            if cap is None:
                self.error = "cannot open stream"
                return
            if self.abandoned.is_set():
                return
            self.reported_fps = _reported_fps(cap)
            self.connected_at = time.monotonic()
            self.opened.set()
            self._on_opened(self)
            self._read_loop(cap)
        except Exception as exc:  # a backend exception must end the session, not the app
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.busy_since = None
            if cap is not None:
                cap.release()
            self.ended.set()

    def _read_loop(self, cap: Any) -> None:
        failures = 0
        while not self.abandoned.is_set():
            started = self.busy_since = time.monotonic()
            ok, image = cap.read()
            self.busy_since = None
            if self.abandoned.is_set():
                return
            if not ok and time.monotonic() - started >= 0.9 * self._read_timeout_s:
                # the backend's own read timeout fired: the stream stalled, its demuxer state is dead
                self.stalled = True
                self.error = f"stalled: no data for {self._read_timeout_s:g} s"
                return
            if ok and is_valid_image(image):
                if failures:  # the stream recovered: those failures were damaged frames
                    self._on_corrupt(failures)
                    failures = 0
                self._on_frame(self, image)
            elif ok:
                self._on_corrupt(1)
            else:
                failures += 1
                if failures >= self._max_read_failures:
                    self.error = f"{failures} consecutive failed reads (stream closed or lost)"
                    return


class LiveSource(VideoSource):
    """A camera or network stream that reconnects forever (until :meth:`stop`).

    ``Frame.index`` counts good frames since the source started, across reconnects; gaps mean frames
    were dropped because the consumer was slower than the camera. ``Frame.timestamp`` is ``time.time()``
    when the frame was decoded.
    """

    live = True

    def __init__(self, stream: StreamConfig, parsed: ParsedUri, options: SourceOptions,
                 max_frames: int | None = None, opener: CaptureOpener | None = None,
                 backoff: Backoff | None = None) -> None:
        super().__init__(stream, options, max_frames)
        self.uri_for_logs = redact_uri(stream.uri)
        self._opener: CaptureOpener = opener or (
            lambda: open_capture(parsed, options.open_timeout_s, options.read_timeout_s))
        self._backoff = backoff or Backoff(options.reconnect_initial_s, options.reconnect_max_s)
        self._buffer: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._next_index = 0
        self._supervisor: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # --- consumer side -------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background (iteration does this itself); idempotent."""
        with self._start_lock:
            if self._supervisor is None and not self.stopped:
                self._supervisor = threading.Thread(target=self._supervise, name=f"source-{self.name}-supervisor",
                                                    daemon=True)
                self._supervisor.start()

    def __iter__(self) -> Iterator[Frame]:
        self.start()
        yielded = 0
        try:
            while self.max_frames is None or yielded < self.max_frames:
                with self._cond:
                    while not self._buffer and not self.stopped:
                        self._cond.wait(_POLL_S)
                    if self.stopped:
                        return
                    frame = self._buffer.popleft()
                yield frame
                yielded += 1
        finally:
            if self.max_frames is not None and yielded >= self.max_frames:
                self.stop()

    def stop(self) -> None:
        super().stop()
        with self._cond:
            self._cond.notify_all()

    def close(self, timeout: float | None = None) -> None:
        """Stop, then wait until the capture is released: at most ``timeout`` s (default: the longest a
        blocked open or read can take). Releasing before the interpreter exits matters: a capture still
        open in a daemon thread at exit can abort the process from FFmpeg's C++ threads."""
        self.stop()
        if timeout is None:
            timeout = self._longest_call_s()
        if self._supervisor is not None:
            self._supervisor.join(timeout)

    def _longest_call_s(self) -> float:
        return max(self.options.open_timeout_s, self.options.read_timeout_s) + self.options.watchdog_grace_s

    # --- decode side (session and supervisor threads) ------------------------------------------

    def _on_connected(self, session: _Session) -> None:
        if session.abandoned.is_set():
            return
        self.fps = session.reported_fps or self.fps
        stats = self._stats.snapshot()
        reconnect = stats.failed_connects > 0 or stats.disconnects > 0
        self._stats.update(connects=stats.connects + 1, reconnects=stats.reconnects + int(reconnect),
                           connected=True, last_error=None)
        log.info("stream %r: %s %s", self.name, "reconnected to" if reconnect else "connected to", self.uri_for_logs)

    def _push(self, session: _Session, image: np.ndarray) -> None:
        if session.abandoned.is_set():
            return
        self._stats.frame()
        with self._cond:
            frame = Frame(self.name, self._next_index, time.time(), image, live=True)
            self._next_index += 1
            if len(self._buffer) >= self.options.buffer_frames:
                self._buffer.popleft()
                self._stats.add("frames_dropped")
            self._buffer.append(frame)
            self._cond.notify()

    def _supervise(self) -> None:
        while not self.stopped:
            session = _Session(self.name, self._opener, self.options, on_opened=self._on_connected,
                               on_frame=self._push, on_corrupt=lambda n: self._stats.add("corrupt_skipped", n))
            session.start()
            self._watch(session)
            self._stats.update(connected=False)
            if self.stopped:
                break
            if session.stalled:
                self._stats.add("stalls")
            if session.connected_at is None:
                self._stats.add("failed_connects")
                reason = session.error or "open failed"
                log.warning("stream %r: cannot connect to %s (%s)", self.name, self.uri_for_logs, reason)
            else:
                self._stats.add("disconnects")
                reason = session.error or "stream ended"
                log.warning("stream %r: lost %s (%s)", self.name, self.uri_for_logs, reason)
                if time.monotonic() - session.connected_at >= self.options.stable_after_s:
                    self._backoff.reset()
            delay = self._backoff.next_delay()
            self._stats.update(last_error=reason, retry_delay_s=delay)
            log.info("stream %r: retrying in %.2f s (attempt %d)", self.name, delay, self._backoff.failures)
            self._stop_event.wait(delay)
            self._stats.update(retry_delay_s=None)
        self._stats.update(connected=False)

    def _watch(self, session: _Session) -> None:
        """Follow a session until it ends, the watchdog abandons it, or the source stops."""
        while not session.ended.wait(0.1):
            if self.stopped:
                session.abandoned.set()
                session.join(self._longest_call_s())  # let it release its capture (a blocked call times out)
                return
            busy_since = session.busy_since
            opened = session.opened.is_set()
            limit = self.options.read_timeout_s if opened else self.options.open_timeout_s
            if busy_since is not None and time.monotonic() - busy_since > limit + self.options.watchdog_grace_s:
                session.error = f"stalled: {'read' if opened else 'open'} blocked for more than {limit:g} s (watchdog)"
                session.stalled = True
                session.abandoned.set()
                return


def _reported_fps(cap: Any) -> float | None:
    """The frame rate the stream advertises (OpenCV gives 0 or absurd values when it does not know)."""
    try:
        import cv2

        fps = float(cap.get(cv2.CAP_PROP_FPS))
    except Exception:  # fake captures in tests, exotic backends
        return None
    return fps if 0 < fps <= 1000 else None

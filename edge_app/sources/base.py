"""What every video source offers the pipeline: iterate frames, read stats, stop from any thread."""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterator
from types import TracebackType

from edge_app.config import StreamConfig
from edge_app.frame import Frame
from edge_app.sources.options import SourceOptions
from edge_app.sources.stats import SourceStats, StatsRecorder


class VideoSource(abc.ABC):
    """Iterable of :class:`Frame`; iteration ends at the end of a (non-looping) file, after
    ``max_frames`` frames, or soon after :meth:`stop` is called from any thread.

    Iterate from one thread at a time. Use as a context manager (or call :meth:`close`) to release the
    device and helper threads.
    """

    live: bool = False
    fps: float | None = None
    """Nominal frame rate: the file's, or what a camera reports once connected (None until then / unknown)."""

    def __init__(self, stream: StreamConfig, options: SourceOptions, max_frames: int | None) -> None:
        if max_frames is not None and max_frames < 0:
            raise ValueError(f"max_frames must be >= 0, got {max_frames}")
        self.stream = stream
        self.options = options
        self.max_frames = max_frames
        self._stop_event = threading.Event()
        self._stats = StatsRecorder()

    @property
    def name(self) -> str:
        return self.stream.name

    @property
    def stats(self) -> SourceStats:
        """A snapshot of the counters (safe to call from any thread)."""
        return self._stats.snapshot()

    @property
    def stopped(self) -> bool:
        return self._stop_event.is_set()

    def stop(self) -> None:
        """Ask iteration to end promptly; thread-safe, idempotent, never blocks."""
        self._stop_event.set()

    @abc.abstractmethod
    def close(self) -> None:
        """Stop and release everything the source holds (waits briefly for its threads)."""

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Frame]: ...

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

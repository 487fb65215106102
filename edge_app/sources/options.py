"""Tunable behaviour of video sources: reconnect back-off and stall timeouts.

Kept out of :class:`~edge_app.config.StreamConfig` on purpose so this module has no heavy imports and
the model can be embedded there later as ``source: SourceOptions`` without changing any source code.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SourceOptions(BaseModel):
    """How a source opens, waits and reconnects.

    The defaults suit IP cameras on a plant LAN: the first retry comes quickly (a camera that dropped one
    TCP connection is usually back at once), later retries slow down to one every ``reconnect_max_s`` so a
    dead camera costs almost nothing, and a stalled stream is noticed within a few seconds because a
    frozen count is worse than a short gap.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True)

    reconnect_initial_s: Annotated[float, Field(gt=0)] = 0.5
    """First back-off delay after a failed open or a lost stream."""
    reconnect_max_s: Annotated[float, Field(gt=0)] = 30.0
    """Ceiling of the doubling back-off delay."""
    stable_after_s: Annotated[float, Field(ge=0)] = 5.0
    """A connection that delivered frames for this long resets the back-off to ``reconnect_initial_s``;
    a camera that accepts a connection and drops it at once keeps backing off instead of being hammered."""
    open_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    """Give up opening a live stream after this long (OpenCV FFMPEG ``CAP_PROP_OPEN_TIMEOUT_MSEC``)."""
    read_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    """A read blocked this long is a stalled stream and counts as a disconnect
    (``CAP_PROP_READ_TIMEOUT_MSEC`` for FFMPEG, plus a watchdog thread for every backend)."""
    watchdog_grace_s: Annotated[float, Field(ge=0)] = 2.0
    """Extra time the watchdog grants beyond the backend's own timeout before abandoning a blocked call."""
    max_read_failures: Annotated[int, Field(ge=1)] = 25
    """Consecutive failed reads that end a live session or a file (truncated tail); fewer failures followed
    by a good frame were corrupt frames, skipped and counted. OpenCV reports a frame it cannot decode and a
    closed stream the same way (``read() -> False``), but a closed stream fails instantly and forever, so 25
    failures cost microseconds there, while 25 damaged frames in a row (~1 s of video) are tolerated."""
    buffer_frames: Annotated[int, Field(ge=1, le=256)] = 4
    """Live frames kept for a slow consumer; older ones are dropped (and counted) to bound latency."""

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> SourceOptions:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be >= reconnect_initial_s")
        return self

"""Video sources: files, network cameras (RTSP/HTTP) and USB cameras, as iterables of Frames.

Usage::

    with open_source(stream_config) as source:
        for frame in source:          # Frame(stream, index, timestamp, image, live)
            ...
        print(source.stats)           # SourceStats snapshot

See :mod:`edge_app.sources.file_source` and :mod:`edge_app.sources.live_source` for the behaviour of
each kind; :class:`SourceOptions` for the timeouts and back-off.
"""

from __future__ import annotations

from edge_app.config import StreamConfig
from edge_app.sources.base import VideoSource
from edge_app.sources.capture import SourceKind, parse_uri
from edge_app.sources.options import SourceOptions
from edge_app.sources.stats import SourceStats

__all__ = ["SourceKind", "SourceOptions", "SourceStats", "VideoSource", "open_source", "parse_uri"]


def open_source(stream: StreamConfig, *, max_frames: int | None = None,
                options: SourceOptions | None = None) -> VideoSource:
    """Open the source named by ``stream.uri``.

    A file is opened and its first frame decoded now: a missing, empty or undecodable file raises
    :class:`~edge_app.errors.EdgeAppError` naming the stream and URI. A live source never fails here: it
    connects in the background when iterated (or on ``start()``), logging a warning and retrying with
    back-off while the camera is unreachable. ``options`` (timeouts, back-off) default to
    ``stream.source`` if the config has it, else :class:`SourceOptions` defaults.
    """
    from edge_app.sources.file_source import FileSource
    from edge_app.sources.live_source import LiveSource

    # ``StreamConfig.source`` (a SourceOptions) is honoured once the config model has that field
    options = options or getattr(stream, "source", None) or SourceOptions()
    parsed = parse_uri(stream.uri)
    if parsed.kind is SourceKind.FILE:
        return FileSource(stream, str(parsed.target), options, max_frames)
    return LiveSource(stream, parsed, options, max_frames)

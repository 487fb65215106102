"""Opening OpenCV captures for the three kinds of URI, and telling good frames from bad ones.

OpenCV's FFMPEG backend honours ``CAP_PROP_OPEN_TIMEOUT_MSEC`` / ``CAP_PROP_READ_TIMEOUT_MSEC`` (an
interrupt callback aborts a blocked ``av_read_frame``), so network streams get them at open time. V4L2
(USB cameras) has no such property; the live source's watchdog covers that case.

Caveat measured with opencv-python 4.11: the FFMPEG backend holds one process-wide mutex for the whole of
``VideoCapture`` open (connect + stream probing), so while one camera's open blocks (an unreachable host
until ``open_timeout_s``), every other FFMPEG open in the process waits. Reads are not affected. Hence the
bounded open timeout, and files loop by seeking rather than reopening.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

# Ask FFMPEG for RTSP over TCP unless the user chose otherwise: interleaved TCP survives NAT, firewalls and
# lossy Wi-Fi without smeared frames, and a dead server is seen as a closed socket instead of silence.
# OpenCV reads this variable on every open; options unknown to a demuxer (files, HTTP) are ignored.
FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
DEFAULT_FFMPEG_OPTIONS = "rtsp_transport;tcp"


class SourceKind(Enum):
    FILE = "file"
    URL = "url"
    DEVICE = "device"


@dataclass(frozen=True, slots=True)
class ParsedUri:
    kind: SourceKind
    target: str | int
    """Path or URL string for files and URLs, camera index for devices."""


def parse_uri(uri: str) -> ParsedUri:
    """``usb:N`` or ``N`` -> device N; ``file://path`` or a bare path -> file; ``scheme://...`` -> URL."""
    text = uri.strip()
    if text.isdigit():
        return ParsedUri(SourceKind.DEVICE, int(text))
    if text.startswith("usb:") and text[4:].isdigit():
        return ParsedUri(SourceKind.DEVICE, int(text[4:]))
    if text.startswith("file://"):
        return ParsedUri(SourceKind.FILE, text[len("file://"):])
    if "://" in text:
        return ParsedUri(SourceKind.URL, text)
    return ParsedUri(SourceKind.FILE, text)


def open_capture(parsed: ParsedUri, open_timeout_s: float, read_timeout_s: float) -> Any:
    """Return an opened ``cv2.VideoCapture`` or None. May block (network): call it from a watched thread."""
    import cv2

    if parsed.kind is SourceKind.DEVICE:
        cap = cv2.VideoCapture(int(parsed.target))
    else:
        if parsed.kind is SourceKind.URL:
            os.environ.setdefault(FFMPEG_OPTIONS_ENV, DEFAULT_FFMPEG_OPTIONS)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000)]
        cap = cv2.VideoCapture(str(parsed.target), cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        return None
    return cap


def is_valid_image(image: object) -> bool:
    """True for a non-empty BGR ``uint8`` HxWx3 array (what :class:`~edge_app.frame.Frame` promises)."""
    return (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and image.ndim == 3
        and image.shape[2] == 3
        and image.shape[0] > 0
        and image.shape[1] > 0
    )


def redact_uri(uri: str) -> str:
    """Hide the password of ``scheme://user:password@host/...`` so URIs can be logged."""
    scheme, sep, rest = uri.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return uri
    userinfo, _, host = rest.partition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"

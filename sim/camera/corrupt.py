"""Damaging JPEG frames the way networks and failing encoders do.

Two kinds, because clients see them differently:

* ``header``: the start-of-image marker and tables are overwritten. Decoders reject the frame outright
  (FFmpeg: "No JPEG data found"); OpenCV's read fails for that frame, so a robust source must skip it
  and keep reading. Only possible where the transport passes bytes through untouched (MJPEG over HTTP).
* ``scan``: random bytes inside the entropy-coded data, headers intact. Decoders conceal the error and
  return a smeared picture; RTP/JPEG payloaders (which parse the headers) accept it, so this is the kind
  used over RTSP.
"""

from __future__ import annotations

import random
from typing import Literal

CorruptKind = Literal["header", "scan"]

_SOS = b"\xff\xda"


def corrupt_jpeg(data: bytes, kind: CorruptKind, rng: random.Random) -> bytes:
    """Return a damaged copy of JPEG ``data``."""
    damaged = bytearray(data)
    if kind == "header":
        n = min(len(damaged), 256)
        damaged[:n] = bytes(n)
        return bytes(damaged)
    sos = damaged.find(_SOS)
    start = sos + 20 if sos >= 0 else len(damaged) // 4
    end = len(damaged) - 2  # keep the end-of-image marker
    if end - start < 8:
        return bytes(damaged)
    length = max(8, (end - start) // 3)
    offset = rng.randrange(start, end - length + 1)
    # no 0xFF in the noise: it would create JPEG markers, which real bit errors rarely hit, and which make
    # RTP/JPEG payloaders end the frame early or reject the stream
    damaged[offset:offset + length] = rng.randbytes(length).replace(b"\xff", b"\x00")
    return bytes(damaged)

"""`CameraServer`: a replayed video served as a live camera on loopback, with fault injection."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Literal

from sim.camera.corrupt import CorruptKind
from sim.camera.faults import Fault, FaultState
from sim.camera.mjpeg import MjpegTransport
from sim.camera.player import FramePlayer
from sim.camera.rtsp import RtspTransport

log = logging.getLogger(__name__)

Protocol = Literal["rtsp", "mjpeg"]


class CameraServer:
    """Serve ``video`` at :attr:`url` in real time, looping, until closed.

    Example (tests)::

        with CameraServer(video, protocol="mjpeg") as cam:
            source = open_source(StreamConfig(name="cam", uri=cam.url))
            ...
            cam.disconnect(2.0)   # drop clients, refuse connections for 2 s
            cam.freeze(1.0)       # same picture for 1 s
            cam.corrupt(5)        # damage the next 5 frames
            cam.stall(3.0)        # keep connections open but send nothing for 3 s
            cam.jitter(5.0, 0.5)  # frame intervals x uniform(0.5, 1.5) for 5 s

    ``faults`` schedules the same things relative to :meth:`start`. Corruption damages JPEG headers over
    MJPEG (frames the client must reject) and entropy-coded data over RTSP (the RTP payloader needs valid
    headers; the client decodes a smeared picture) unless ``corrupt_kind`` says otherwise.

    RTSP ``codec``: ``jpeg`` (RTP/JPEG, cheap: frames pass through untouched) or ``h264`` (re-encoded by
    x264 in the server process, like most IP cameras; a corrupt frame then becomes a cleanly encoded smeared
    picture, not a damaged bitstream).
    """

    def __init__(self, video: str | Path, protocol: Protocol = "rtsp", *, port: int = 0, host: str = "127.0.0.1",
                 fps: float | None = None, loop: bool = True, faults: list[Fault] | None = None,
                 jitter: float = 0.3, corrupt_kind: CorruptKind | None = None, codec: str = "jpeg",
                 seed: int = 0) -> None:
        if protocol not in ("rtsp", "mjpeg"):
            raise ValueError(f"protocol must be 'rtsp' or 'mjpeg', got {protocol!r}")
        self.protocol = protocol
        self.faults = FaultState(jitter=jitter)
        self.schedule = list(faults or [])
        self._transport: MjpegTransport | RtspTransport
        self.player = FramePlayer(Path(video), self._publish, self.faults, fps=fps, loop=loop,
                                  corrupt_kind=corrupt_kind or ("header" if protocol == "mjpeg" else "scan"),
                                  seed=seed)
        if protocol == "mjpeg":
            self._transport = MjpegTransport(host, port)
        else:
            self._transport = RtspTransport(self.player.fps, host, port, codec=codec)
        self._stop = threading.Event()
        self._scheduler: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self._transport.url

    @property
    def fps(self) -> float:
        return self.player.fps

    def _publish(self, jpeg: bytes) -> None:
        self._transport.publish(jpeg)

    def start(self) -> CameraServer:
        try:
            self._transport.start()
        except BaseException:
            self.player.stop()
            raise
        self.player.start()
        if self.schedule:
            self._scheduler = threading.Thread(target=self._run_schedule, name="camera-faults", daemon=True)
            self._scheduler.start()
        log.info("serving %s at %s (%.1f fps)", self.player.video, self.url, self.fps)
        return self

    def close(self) -> None:
        self._stop.set()
        self.player.stop()
        self._transport.close()

    def __enter__(self) -> CameraServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- faults --------------------------------------------------------------------------------

    def disconnect(self, seconds: float) -> None:
        self._transport.disconnect(seconds)

    def freeze(self, seconds: float) -> None:
        self.faults.freeze(seconds)

    def stall(self, seconds: float) -> None:
        self.faults.stall(seconds)

    def corrupt(self, n_frames: int) -> None:
        self.faults.corrupt(n_frames)

    def jitter(self, seconds: float, fraction: float | None = None) -> None:
        self.faults.jitter(seconds, fraction)

    def trigger(self, fault: Fault) -> None:
        if fault.kind == "corrupt":
            self.corrupt(int(fault.amount))
        else:
            getattr(self, fault.kind)(fault.amount)  # disconnect, freeze, stall, jitter take seconds
        log.info("fault: %s %.1f", fault.kind, fault.amount)

    def _run_schedule(self) -> None:
        start = time.monotonic()
        previous = start - 1e-6  # so a fault at 0 s fires
        while not self._stop.wait(0.05):
            now = time.monotonic()
            for fault in self.schedule:
                if fault.due(now - start, previous - start):
                    self.trigger(fault)
            previous = now

"""Camera replay against the real sources: RTSP (gst-rtsp-server child process) and MJPEG over HTTP on
127.0.0.1, with a camera that goes away and comes back on the same port, stalls, freezes, corrupts frames
and jitters. Every wait is bounded; the whole file takes ~40 s, mostly real-time video."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_app.config import StreamConfig
from edge_app.errors import EdgeAppError
from edge_app.frame import Frame
from edge_app.sources import SourceOptions, open_source, parse_uri
from edge_app.sources.backoff import Backoff
from edge_app.sources.live_source import LiveSource
from sim.camera import CameraServer, Fault
from sim.camera.corrupt import corrupt_jpeg
from sim.camera.rtsp import free_port, rtsp_available

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[1]
FPS = 20.0
N_FRAMES = 30
SIZE = (96, 64)  # multiples of 8, as RTP/JPEG requires

OPTIONS = SourceOptions(reconnect_initial_s=0.25, reconnect_max_s=2.0, stable_after_s=60.0, open_timeout_s=5.0,
                        read_timeout_s=1.5, watchdog_grace_s=1.0)


def frame_image(i: int) -> np.ndarray:
    """Distinct, smooth frames (a moving bar on a shade that encodes i) that survive JPEG well."""
    image = np.full((SIZE[1], SIZE[0], 3), 40 + 6 * i, np.uint8)
    x = (3 * i) % (SIZE[0] - 8)
    image[:, x:x + 8] = 255
    return image


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("camera") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    for i in range(N_FRAMES):
        writer.write(frame_image(i))
    writer.release()
    return path


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Collector:
    """Iterates a source in a thread (as the pipeline does) and keeps what it received."""

    def __init__(self, source: LiveSource) -> None:
        self.source = source
        self.frames: list[Frame] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for frame in self.source:
            with self._lock:
                self.frames.append(frame)

    def count(self) -> int:
        with self._lock:
            return len(self.frames)

    def wait_for_more(self, n: int, timeout: float = 15.0) -> None:
        target = self.count() + n
        wait_until(lambda: self.count() >= target, timeout, f"{n} more frames (stats: {self.source.stats})")

    def close(self) -> None:
        self.source.close()
        self._thread.join(5)
        assert not self._thread.is_alive()


class RecordingBackoff(Backoff):
    def __init__(self, initial_s: float, maximum_s: float) -> None:
        super().__init__(initial_s, maximum_s, rng=random.Random(3))
        self.delays: list[float] = []

    def next_delay(self) -> float:
        self.delays.append(super().next_delay())
        return self.delays[-1]


def camera_source(url: str, options: SourceOptions = OPTIONS, backoff: Backoff | None = None) -> LiveSource:
    config = StreamConfig(name="cam-1", uri=url)
    if backoff is not None:  # the only thing open_source does not let a caller inject
        return LiveSource(config, parse_uri(url), options, backoff=backoff)
    source = open_source(config, options=options)
    assert isinstance(source, LiveSource)
    return source


def digest(frame: Frame) -> str:
    return hashlib.sha1(frame.image.tobytes()).hexdigest()


def longest_identical_run(frames: list[Frame]) -> int:
    best = run = 1
    for a, b in zip(frames, frames[1:], strict=False):
        run = run + 1 if digest(a) == digest(b) else 1
        best = max(best, run)
    return best


# --- RTSP: the camera goes away and comes back on the same port -----------------------------------


@pytest.mark.parametrize("codec", ["jpeg", "h264"])
def test_rtsp_source_reconnects_with_backoff_when_the_camera_restarts(clip: Path, codec: str) -> None:
    reason = rtsp_available()
    assert reason is None, reason  # installed by scripts/install-system-deps.sh; a skip would hide a broken CI
    port = free_port()
    camera = CameraServer(clip, "rtsp", port=port, fps=FPS, codec=codec).start()
    assert camera.url == f"rtsp://127.0.0.1:{port}/stream"
    assert isinstance(open_source(StreamConfig(name="probe", uri=camera.url)), LiveSource)
    backoff = RecordingBackoff(OPTIONS.reconnect_initial_s, OPTIONS.reconnect_max_s)
    collector = Collector(camera_source(camera.url, backoff=backoff))
    try:
        collector.wait_for_more(10, timeout=20)
        first = collector.source.stats
        assert first.connected and first.connects == 1 and first.reconnects == 0
        assert collector.frames[0].image.shape == (SIZE[1], SIZE[0], 3)

        camera.close()  # the RTSP process is killed: sessions drop, the port closes
        wait_until(lambda: collector.source.stats.failed_connects >= 3, 20, "3 failed reconnect attempts")
        down = collector.source.stats
        assert not down.connected and down.disconnects == 1
        before_restart = collector.count()

        camera = CameraServer(clip, "rtsp", port=port, fps=FPS, codec=codec).start()  # back, same port
        collector.wait_for_more(10, timeout=25)
        up = collector.source.stats
        assert up.connected and up.reconnects >= 1 and up.connects >= 2
        after = collector.frames[before_restart:]
        assert after[0].index > collector.frames[before_restart - 1].index  # indices keep growing
        assert after[0].timestamp > collector.frames[before_restart - 1].timestamp
        # the attempts while the camera was away backed off: 0.25, 0.5, 1.0 ... each jittered in [base/2, base]
        for k, delay in enumerate(backoff.delays[:3]):
            base = min(OPTIONS.reconnect_max_s, OPTIONS.reconnect_initial_s * 2**k)
            assert base / 2 <= delay <= base
    finally:
        collector.close()
        camera.close()


def test_rtsp_corrupt_frames_do_not_break_the_stream(clip: Path) -> None:
    with CameraServer(clip, "rtsp", fps=FPS) as camera:
        collector = Collector(camera_source(camera.url))
        try:
            collector.wait_for_more(10, timeout=20)
            camera.corrupt(5)  # damaged entropy-coded data: decoders conceal it, the session must survive
            wait_until(lambda: camera.faults.corrupted_total == 5, 5, "5 corrupted frames sent")
            collector.wait_for_more(10)
            stats = collector.source.stats
            assert stats.disconnects == 0 and stats.connected
        finally:
            collector.close()


# --- MJPEG over HTTP ----------------------------------------------------------------------------


@pytest.fixture
def mjpeg(clip: Path) -> Iterator[CameraServer]:
    with CameraServer(clip, "mjpeg", fps=FPS) as camera:
        yield camera


def test_mjpeg_corrupt_frames_are_skipped_and_counted(mjpeg: CameraServer) -> None:
    collector = Collector(camera_source(mjpeg.url))
    try:
        collector.wait_for_more(5)
        mjpeg.corrupt(3)  # JPEG headers destroyed: OpenCV cannot decode those frames
        wait_until(lambda: mjpeg.faults.corrupted_total == 3, 5, "3 corrupted frames sent")
        collector.wait_for_more(10)
        stats = collector.source.stats
        assert 1 <= stats.corrupt_skipped <= 3
        assert stats.disconnects == 0 and stats.connects == 1
        assert all(f.image.shape == (SIZE[1], SIZE[0], 3) for f in collector.frames)
    finally:
        collector.close()


def test_mjpeg_scheduled_faults_from_the_constructor(clip: Path) -> None:
    faults = [Fault("corrupt", at=0.5, amount=2), Fault("corrupt", at=1.0, amount=1, every=0.5)]
    with CameraServer(clip, "mjpeg", fps=FPS, faults=faults) as camera:
        collector = Collector(camera_source(camera.url))
        try:
            wait_until(lambda: camera.faults.corrupted_total >= 4, 10, "scheduled corruptions")
            collector.wait_for_more(5)
            assert collector.source.stats.corrupt_skipped >= 1
            assert collector.source.stats.disconnects == 0
        finally:
            collector.close()


def test_mjpeg_freeze_repeats_one_picture_without_disconnecting(mjpeg: CameraServer) -> None:
    collector = Collector(camera_source(mjpeg.url))
    try:
        collector.wait_for_more(15)
        assert longest_identical_run(collector.frames) == 1  # a moving video: consecutive frames differ
        start = collector.count()
        mjpeg.freeze(1.0)
        collector.wait_for_more(40)  # through the freeze and out of it
        during_and_after = collector.frames[start:]
        assert longest_identical_run(during_and_after) >= 8  # ~20 identical frames expected at 20 fps
        assert digest(during_and_after[-1]) != digest(during_and_after[-2])  # moving again
        assert collector.source.stats.disconnects == 0
    finally:
        collector.close()


def test_mjpeg_jitter_keeps_the_stream_up(mjpeg: CameraServer) -> None:
    collector = Collector(camera_source(mjpeg.url))
    try:
        collector.wait_for_more(5)
        mjpeg.jitter(2.0, 0.9)  # intervals from 5 ms to 95 ms
        collector.wait_for_more(30)
        stats = collector.source.stats
        assert stats.disconnects == 0 and stats.corrupt_skipped == 0 and stats.connected
    finally:
        collector.close()


def test_mjpeg_disconnect_then_reconnect(mjpeg: CameraServer) -> None:
    collector = Collector(camera_source(mjpeg.url))
    try:
        collector.wait_for_more(5)
        mjpeg.disconnect(1.0)  # listening socket and client sockets closed for 1 s
        collector.wait_for_more(10)
        stats = collector.source.stats
        assert stats.disconnects >= 1 and stats.reconnects >= 1 and stats.connected
        assert stats.fps > 0 and stats.last_frame_time is not None
    finally:
        collector.close()


def test_mjpeg_stall_is_detected_by_read_timeout_and_recovers(mjpeg: CameraServer) -> None:
    options = OPTIONS.model_copy(update={"read_timeout_s": 1.0})
    collector = Collector(camera_source(mjpeg.url, options))
    try:
        collector.wait_for_more(5)
        mjpeg.stall(2.5)  # socket open, nothing sent
        wait_until(lambda: collector.source.stats.stalls >= 1, 10, "a stall to be detected")
        assert collector.source.stats.disconnects >= 1
        collector.wait_for_more(10)
        assert collector.source.stats.connected and collector.source.stats.reconnects >= 1
    finally:
        collector.close()


# --- pieces -------------------------------------------------------------------------------------


def test_fault_parsing_and_schedule() -> None:
    assert Fault.parse("disconnect:10:3") == Fault("disconnect", 10.0, 3.0)
    assert Fault.parse("corrupt:5:10:30") == Fault("corrupt", 5.0, 10.0, 30.0)
    for bad in ("boom:1:1", "freeze:1", "freeze:a:1", "stall:1:1:0", "jitter:-1:2"):
        with pytest.raises(EdgeAppError, match="--fault"):
            Fault.parse(bad)
    once = Fault("freeze", at=2.0, amount=1.0)
    assert [once.due(t, t - 0.5) for t in (1.5, 2.0, 2.5)] == [False, True, False]
    periodic = Fault("freeze", at=1.0, amount=1.0, every=3.0)
    fired = [t / 10 for t in range(1, 120) if periodic.due(t / 10, (t - 1) / 10)]
    assert fired == pytest.approx([1.0, 4.0, 7.0, 10.0])


def test_corrupt_jpeg_kinds() -> None:
    ok, encoded = cv2.imencode(".jpg", frame_image(3))
    data = encoded.tobytes()
    rng = random.Random(0)
    header = corrupt_jpeg(data, "header", rng)
    assert len(header) == len(data) and cv2.imdecode(np.frombuffer(header, np.uint8), cv2.IMREAD_COLOR) is None
    scan = corrupt_jpeg(data, "scan", rng)
    sos = data.find(b"\xff\xda")
    assert len(scan) == len(data) and scan != data and scan[:sos + 20] == data[:sos + 20]
    assert b"\xff" not in bytes(a for a, b in zip(scan, data, strict=True) if a != b)  # no new markers


def test_cli_serves_mjpeg_that_opencv_reads(clip: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "edge_app.cli", "sim", "serve", str(clip), "--protocol", "mjpeg", "--port", str(port),
         "--duration", "20"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        assert f"http://127.0.0.1:{port}/stream.mjpg" in banner, banner
        collector = Collector(camera_source(f"http://127.0.0.1:{port}/stream.mjpg"))
        try:
            collector.wait_for_more(5)
        finally:
            collector.close()
    finally:
        server.terminate()
        server.wait(10)


def test_cli_rejects_a_bad_fault_in_one_line(clip: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "edge_app.cli", "sim", "serve", str(clip), "--fault", "boom:1"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --fault 'boom:1'") and "Traceback" not in result.stderr

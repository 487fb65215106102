"""Video sources: files (indices, timestamps, loop, corrupt/truncated/missing), URI parsing, back-off, and the
live reconnect/watchdog/stop logic driven by scripted fake captures (no network; see test_camera_server.py
for the same against real RTSP/MJPEG servers)."""

from __future__ import annotations

import logging
import random
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
from edge_app.sources import SourceKind, SourceOptions, open_source, parse_uri
from edge_app.sources.backoff import Backoff
from edge_app.sources.capture import redact_uri
from edge_app.sources.live_source import LiveSource

pytestmark = pytest.mark.timeout(60)

FPS = 10.0
N_FRAMES = 20
SIZE = (96, 64)  # width, height


def frame_image(i: int) -> np.ndarray:
    """A frame whose brightness encodes its index, so decoded frames can be identified despite JPEG loss."""
    return np.full((SIZE[1], SIZE[0], 3), 10 * i + 5, np.uint8)


def index_of(image: np.ndarray) -> int:
    return int(round((float(image.mean()) - 5) / 10))


def write_video(path: Path, n: int = N_FRAMES, fps: float = FPS) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, SIZE)
    assert writer.isOpened()
    for i in range(n):
        writer.write(frame_image(i))
    writer.release()
    return path


def jpeg_starts(data: bytes) -> list[int]:
    """Offsets of the JPEG start-of-image markers in an MJPEG AVI: one per frame."""
    starts, pos = [], data.find(b"\xff\xd8\xff")
    while pos >= 0:
        starts.append(pos)
        pos = data.find(b"\xff\xd8\xff", pos + 3)
    return starts


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "clip.avi")


def stream(uri: str | Path, **kw: object) -> StreamConfig:
    return StreamConfig(name="cam-1", uri=str(uri), **kw)


# --- files ---------------------------------------------------------------------------------------


def test_file_frames_have_stream_index_media_timestamp_and_pixels(video: Path) -> None:
    with open_source(stream(video)) as source:
        frames = list(source)
    assert [f.index for f in frames] == list(range(N_FRAMES))
    assert [f.timestamp for f in frames] == pytest.approx([i / FPS for i in range(N_FRAMES)])
    assert all(f.stream == "cam-1" and not f.live for f in frames)
    assert all(f.image.shape == (SIZE[1], SIZE[0], 3) and f.image.dtype == np.uint8 for f in frames)
    assert [index_of(f.image) for f in frames] == list(range(N_FRAMES))
    stats = source.stats
    assert stats.frames_read == N_FRAMES and stats.corrupt_skipped == 0 and not stats.connected
    assert source.fps == pytest.approx(FPS)


def test_max_frames_limits_a_file(video: Path) -> None:
    source = open_source(stream(video), max_frames=7)
    assert [f.index for f in source] == list(range(7))
    assert source.stats.frames_read == 7  # nothing decoded beyond the limit
    assert list(open_source(stream(video), max_frames=0)) == []


def test_loop_restarts_with_continuing_indices_and_timestamps(video: Path) -> None:
    frames = list(open_source(stream(video, loop=True), max_frames=2 * N_FRAMES + 5))
    assert [f.index for f in frames] == list(range(2 * N_FRAMES + 5))
    assert all(b.timestamp > a.timestamp for a, b in zip(frames, frames[1:], strict=False))
    assert [index_of(f.image) for f in frames[N_FRAMES:]] == [i % N_FRAMES for i in range(N_FRAMES, 2 * N_FRAMES + 5)]


def test_corrupt_frame_in_file_is_skipped_and_counted(video: Path, tmp_path: Path) -> None:
    data = bytearray(video.read_bytes())
    starts = jpeg_starts(bytes(data))
    assert len(starts) == N_FRAMES
    bad = 6
    data[starts[bad]:starts[bad] + 200] = bytes(200)  # destroy that frame's JPEG headers
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))

    with open_source(stream(damaged)) as source:
        frames = list(source)
    assert source.stats.corrupt_skipped == 1
    assert [f.index for f in frames] == [i for i in range(N_FRAMES) if i != bad]  # a gap, not a shift
    assert [index_of(f.image) for f in frames] == [f.index for f in frames]
    assert frames[bad].timestamp == pytest.approx((bad + 1) / FPS)


def test_truncated_file_ends_cleanly_with_the_frames_before_the_cut(video: Path, tmp_path: Path) -> None:
    data = video.read_bytes()
    cut = jpeg_starts(data)[12] + 50  # inside frame 12
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(data[:cut])
    frames = list(open_source(stream(truncated)))
    assert 10 <= len(frames) <= 13
    assert [f.index for f in frames] == list(range(len(frames)))


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "not found"), (b"", "empty"), (b"this is not a video" * 50, "cannot open")],
)
def test_bad_file_at_start_up_is_an_error_naming_stream_and_uri(tmp_path: Path, content: bytes | None,
                                                                  message: str) -> None:
    path = tmp_path / "cam.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(EdgeAppError, match=message) as err:
        open_source(stream(path))
    assert "cam-1" in str(err.value) and str(path) in str(err.value)


def test_stop_from_another_thread_ends_a_looping_file(video: Path) -> None:
    source = open_source(stream(video, loop=True))
    seen: list[Frame] = []

    def consume() -> None:
        for frame in source:
            seen.append(frame)
            time.sleep(0.001)

    consumer = threading.Thread(target=consume)
    consumer.start()
    while len(seen) < 3 * N_FRAMES:
        time.sleep(0.01)
    source.stop()
    consumer.join(5)
    assert not consumer.is_alive()


# --- URIs and back-off ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "kind", "target"),
    [
        ("0", SourceKind.DEVICE, 0),
        ("usb:2", SourceKind.DEVICE, 2),
        ("rtsp://10.0.0.5:554/stream1", SourceKind.URL, "rtsp://10.0.0.5:554/stream1"),
        ("http://cam/video.mjpg", SourceKind.URL, "http://cam/video.mjpg"),
        ("file:///data/a.mp4", SourceKind.FILE, "/data/a.mp4"),
        ("videos/usb:x.mp4", SourceKind.FILE, "videos/usb:x.mp4"),
        ("/data/line-1.mp4", SourceKind.FILE, "/data/line-1.mp4"),
    ],
)
def test_parse_uri(uri: str, kind: SourceKind, target: str | int) -> None:
    parsed = parse_uri(uri)
    assert (parsed.kind, parsed.target) == (kind, target)


def test_passwords_are_redacted_from_logged_uris() -> None:
    assert redact_uri("rtsp://admin:s3cret@10.0.0.5/h264") == "rtsp://admin:***@10.0.0.5/h264"
    assert redact_uri("rtsp://10.0.0.5/h264") == "rtsp://10.0.0.5/h264"


def test_backoff_doubles_within_jitter_bounds_caps_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    bases = [min(4.0, 0.5 * 2**k) for k in range(8)]
    for delay, base in zip(delays, bases, strict=True):
        assert base / 2 <= delay <= base
    assert len(set(delays)) == len(delays)  # jittered, not lock-step
    backoff.reset()
    assert backoff.next_delay() <= 0.5


# --- live sources with scripted captures ---------------------------------------------------------


class FakeCapture:
    """Plays a script of read results: an ndarray (good frame), None (ok but empty), "fail" (read False),
    "block" (read blocks until released, like a stalled socket); after the script: read() -> False."""

    def __init__(self, script: list[object], release_blocked: threading.Event) -> None:
        self.script = list(script)
        self.release_blocked = release_blocked
        self.released = False

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self.script:
            return False, None
        step = self.script.pop(0)
        if isinstance(step, str) and step == "block":
            self.release_blocked.wait(30)
            return False, None
        if isinstance(step, str) and step == "fail":
            return False, None
        time.sleep(0.005)
        return True, step  # type: ignore[return-value]

    def release(self) -> None:
        self.released = True


class ScriptedOpener:
    """Each call returns the next capture (or None: open failed; "block": open hangs)."""

    def __init__(self, sessions: list[object]) -> None:
        self.sessions = list(sessions)
        self.calls = 0
        self.unblock = threading.Event()
        self.captures: list[FakeCapture] = []

    def __call__(self) -> FakeCapture | None:
        self.calls += 1
        if not self.sessions:
            return None
        step = self.sessions.pop(0)
        if step is None:
            return None
        if isinstance(step, str) and step == "block":
            self.unblock.wait(30)
            return None
        capture = FakeCapture(step, self.unblock)  # type: ignore[arg-type]
        self.captures.append(capture)
        return capture


FAST = SourceOptions(reconnect_initial_s=0.05, reconnect_max_s=0.2, stable_after_s=60, open_timeout_s=0.3,
                     read_timeout_s=0.3, watchdog_grace_s=0.1, max_read_failures=3)


def live(opener: Callable[[], object], options: SourceOptions = FAST, max_frames: int | None = None) -> LiveSource:
    return LiveSource(stream("rtsp://cam.invalid/stream"), parse_uri("rtsp://cam.invalid/stream"), options,
                      max_frames=max_frames, opener=opener)


def good(n: int, start: int = 0) -> list[np.ndarray]:
    return [frame_image(i % 25) for i in range(start, start + n)]


def collect(source: LiveSource, n: int, timeout: float = 10.0) -> list[Frame]:
    """The first n frames, failing (instead of hanging) if they do not come."""
    frames: list[Frame] = []
    consumer = threading.Thread(target=lambda: frames.extend(_take(iter(source), n)), daemon=True)
    consumer.start()
    consumer.join(timeout)
    if consumer.is_alive():
        source.stop()
        pytest.fail(f"got {len(frames)} of {n} frames within {timeout} s; stats: {source.stats}")
    return frames


def _take(frames: Iterator[Frame], n: int) -> list[Frame]:
    out = []
    for frame in frames:
        out.append(frame)
        if len(out) == n:
            break
    return out


def test_live_reconnects_after_failed_opens_and_lost_stream(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge_app.sources")
    opener = ScriptedOpener([None, None, good(5), None, [*good(20, 5), "block"]])
    before = time.time()
    with live(opener) as source:
        frames = collect(source, 25)
        stats = source.stats
        opener.unblock.set()
    assert [f.index for f in frames] == list(range(25))  # indices continue across reconnects
    assert [index_of(f.image) for f in frames] == [i % 25 for i in range(25)]
    assert all(f.live and before <= f.timestamp <= time.time() for f in frames)
    assert stats.failed_connects == 3 and stats.disconnects == 1
    assert stats.connects == 2 and stats.reconnects == 2 and stats.connected
    assert opener.captures[0].released
    assert any("cannot connect" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


class RecordingBackoff(Backoff):
    def __init__(self, initial_s: float, maximum_s: float) -> None:
        super().__init__(initial_s, maximum_s, rng=random.Random(7))
        self.delays: list[float] = []

    def next_delay(self) -> float:
        self.delays.append(super().next_delay())
        return self.delays[-1]


def test_live_backoff_grows_between_consecutive_failures_and_resets_after_a_stable_session() -> None:
    backoff = RecordingBackoff(0.02, 0.16)
    options = FAST.model_copy(update={"stable_after_s": 0.0})  # any session that delivered frames is stable
    opener = ScriptedOpener([None] * 6 + [good(3)] + [None] * 2 + [[*good(3, 3), "block"]])
    source = LiveSource(stream("rtsp://cam.invalid/s"), parse_uri("rtsp://cam.invalid/s"), options,
                        opener=opener, backoff=backoff)
    with source:
        collect(source, 6)
        opener.unblock.set()
    bases = [0.02, 0.04, 0.08, 0.16, 0.16, 0.16] + [0.02, 0.04, 0.08]  # reset after the stable session
    assert len(backoff.delays) == len(bases)
    for delay, base in zip(backoff.delays, bases, strict=True):
        assert base / 2 <= delay <= base


def test_live_corrupt_and_empty_frames_are_skipped_and_counted_without_reconnecting() -> None:
    script: list[object] = [*good(3), "fail", *good(2, 3), None, np.zeros((0, 0, 3), np.uint8),
                            np.zeros((SIZE[1], SIZE[0]), np.uint8), "fail", "fail", *good(5, 5), "block"]
    opener = ScriptedOpener([script])
    with live(opener) as source:
        frames = collect(source, 10)
        stats = source.stats
        opener.unblock.set()
    assert [index_of(f.image) for f in frames] == list(range(10))
    assert stats.corrupt_skipped == 6  # 3 failed reads + empty + zero-size + grey (wrong shape)
    assert stats.disconnects == 0 and stats.connects == 1


def test_watchdog_abandons_a_stalled_read_and_reconnects() -> None:
    opener = ScriptedOpener([[*good(3), "block"], good(5, 3)])
    with live(opener) as source:
        frames = collect(source, 8)
        stats = source.stats
        opener.unblock.set()  # let the abandoned read return so its thread releases the capture
    assert [index_of(f.image) for f in frames] == list(range(8))
    assert stats.stalls >= 1 and stats.disconnects >= 1 and stats.reconnects >= 1
    deadline = time.monotonic() + 5
    while not opener.captures[0].released and time.monotonic() < deadline:
        time.sleep(0.01)
    assert opener.captures[0].released  # the abandoned session released its capture once unblocked


def test_watchdog_abandons_a_hanging_open() -> None:
    opener = ScriptedOpener(["block", [*good(2), "block"]])
    with live(opener) as source:
        collect(source, 2)
        stats = source.stats
        opener.unblock.set()
    assert stats.failed_connects == 1 and stats.stalls >= 1 and stats.reconnects == 1


@pytest.mark.parametrize("where", ["backoff", "open"])
def test_stop_ends_iteration_while_reconnecting(where: str) -> None:
    options = FAST.model_copy(update={"reconnect_initial_s": 30.0, "reconnect_max_s": 60.0,
                                      "open_timeout_s": 30.0})
    opener = ScriptedOpener([None] if where == "backoff" else ["block"])
    source = live(opener, options)
    consumer = threading.Thread(target=lambda: list(source), daemon=True)
    consumer.start()
    deadline = time.monotonic() + 5
    while opener.calls == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert consumer.is_alive()  # still waiting for a frame
    source.stop()
    consumer.join(2)
    assert not consumer.is_alive()
    opener.unblock.set()
    source.close(timeout=2)


def test_slow_consumer_gets_the_newest_frames_and_drops_are_counted() -> None:
    options = FAST.model_copy(update={"buffer_frames": 2})
    opener = ScriptedOpener([good(25)])
    source = live(opener, options)
    source.start()
    deadline = time.monotonic() + 5
    while source.stats.frames_read < 25 and time.monotonic() < deadline:
        time.sleep(0.02)
    frames = collect(source, 2)
    source.close()
    assert [index_of(f.image) for f in frames] == [23, 24]
    assert [f.index for f in frames] == [23, 24]
    assert source.stats.frames_dropped == 23


def test_max_frames_stops_a_live_source() -> None:
    opener = ScriptedOpener([good(25)])
    source = live(opener, max_frames=4)
    frames = list(source)
    source.close()
    assert len(frames) == 4 and source.stopped

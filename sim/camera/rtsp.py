"""RTSP via GStreamer's gst-rtsp-server, run as a child of the system Python (see rtsp_gi_server.py).

This process paces and damages frames; the child only packetises them (RTP/JPEG over RTSP) for any
number of clients. A disconnect kills the child — every RTSP session and the listening socket vanish
exactly as when a camera reboots — and starts a new one on the same port after the outage.
"""

from __future__ import annotations

import logging
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from edge_app.errors import EdgeAppError

log = logging.getLogger(__name__)

SYSTEM_PYTHON = "/usr/bin/python3"
SCRIPT = Path(__file__).with_name("rtsp_gi_server.py")
READY_TIMEOUT_S = 15.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def rtsp_available() -> str | None:
    """None if the RTSP server can run here, else why not (for skips and CLI errors)."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                              "from gi.repository import GstRtspServer"],
        capture_output=True, text=True, timeout=30,
    )
    if probe.returncode != 0:
        return "python3-gi / gir1.2-gst-rtsp-server-1.0 not installed (scripts/install-system-deps.sh)"
    return None


class RtspTransport:
    """Serves published JPEG frames at ``rtsp://host:port/stream``."""

    def __init__(self, fps: float, host: str = "127.0.0.1", port: int = 0, path: str = "/stream",
                 codec: str = "jpeg") -> None:
        if codec not in ("jpeg", "h264"):
            raise ValueError(f"codec must be 'jpeg' or 'h264', got {codec!r}")
        self.fps = fps
        self.codec = codec
        self.host = host
        self.port = port or free_port(host)
        self.path = path
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._restart_timer: threading.Timer | None = None

    @property
    def url(self) -> str:
        return f"rtsp://{self.host}:{self.port}{self.path}"

    def start(self) -> None:
        if shutil.which(SYSTEM_PYTHON) is None:
            raise EdgeAppError(f"RTSP replay needs {SYSTEM_PYTHON} with python3-gi")
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(
                [SYSTEM_PYTHON, str(SCRIPT), "--host", self.host, "--port", str(self.port), "--path", self.path,
                 "--fps", str(self.fps), "--codec", self.codec],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
            )
            ready = self._wait_ready(proc)
            if not ready:
                proc.kill()
                proc.wait()
                errors.seek(0)
                tail = errors.read().decode(errors="replace").strip().splitlines()[-3:]
                raise EdgeAppError(f"RTSP server did not start on port {self.port}: {' | '.join(tail) or 'no output'}")
        with self._lock:
            self._proc = proc

    @staticmethod
    def _wait_ready(proc: subprocess.Popen[bytes]) -> bool:
        assert proc.stdout is not None
        result: list[bytes] = []
        reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(READY_TIMEOUT_S)
        return bool(result) and result[0].strip() == b"ready"

    def publish(self, jpeg: bytes) -> None:
        """Send one frame to the server process (dropped while it is down). Written outside the lock so that
        a disconnect can always kill a child that stopped reading; the write then fails and is ignored."""
        with self._lock:
            proc = self._proc
        if proc is None or proc.stdin is None:
            return
        try:
            proc.stdin.write(struct.pack(">I", len(jpeg)) + jpeg)
            proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass

    def _kill(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def disconnect(self, seconds: float) -> None:
        """Kill the server (all sessions drop, port closes) and restart it on the same port after ``seconds``."""
        self._kill()
        log.info("rtsp: disconnected for %.1f s", seconds)
        self._restart_timer = threading.Timer(seconds, self._restart)
        self._restart_timer.daemon = True
        self._restart_timer.start()

    def _restart(self) -> None:
        deadline = time.monotonic() + 5
        while not self._closed:
            try:
                self.start()
                log.info("rtsp: serving again on %s", self.url)
                return
            except EdgeAppError:  # the port may linger briefly after the old process died
                if time.monotonic() > deadline:
                    log.exception("rtsp: restart failed")
                    return
                time.sleep(0.2)

    def close(self) -> None:
        self._closed = True
        if self._restart_timer is not None:
            self._restart_timer.cancel()
        self._kill()

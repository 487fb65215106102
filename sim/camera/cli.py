"""`edge-app sim serve VIDEO`: replay a video as a live camera on loopback (typer command function)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import typer


def serve_command(
    video: Path = typer.Argument(..., help="Any video OpenCV reads (e.g. the output of `edge-app sim generate`)"),
    protocol: str = typer.Option("rtsp", help="rtsp (RTP/JPEG via gst-rtsp-server) or mjpeg (HTTP multipart)"),
    port: int | None = typer.Option(None, help="TCP port on --host (default 8554 for rtsp, 8080 for mjpeg; "
                                    "0: any free port)"),
    host: str = typer.Option("127.0.0.1", help="Address to listen on"),
    codec: str = typer.Option("jpeg", help="RTSP payload: jpeg (RTP/JPEG) or h264 (x264, like most cameras)"),
    fps: float | None = typer.Option(None, help="Frame rate (default: the video's own)"),
    loop: bool = typer.Option(True, "--loop/--no-loop", help="Restart the video at its end (default) or stop"),
    fault: list[str] = typer.Option([], "--fault", help="KIND:AT:AMOUNT[:EVERY], repeatable. KIND: disconnect, "
                                    "stall, freeze, jitter (AMOUNT = seconds) or corrupt (AMOUNT = frames); AT "
                                    "and EVERY in seconds. E.g. --fault disconnect:20:5:60 --fault corrupt:10:3"),
    jitter: float = typer.Option(0.3, help="Jitter fraction j for 'jitter' faults: intervals x U(1-j, 1+j)"),
    duration: float | None = typer.Option(None, help="Stop after this many seconds (default: until Ctrl-C)"),
) -> None:
    """Serve VIDEO as a live network camera, paced in real time, with injectable faults."""
    import logging

    from edge_app.errors import EdgeAppError
    from sim.camera import CameraServer, Fault

    if protocol not in ("rtsp", "mjpeg"):
        raise EdgeAppError(f"--protocol: expected rtsp or mjpeg, got {protocol!r}")
    if codec not in ("jpeg", "h264"):
        raise EdgeAppError(f"--codec: expected jpeg or h264, got {codec!r}")
    if not 0 <= jitter < 1:
        raise EdgeAppError(f"--jitter: expected 0 <= j < 1, got {jitter}")
    faults = [Fault.parse(text) for text in fault]
    if port is None:
        port = 8554 if protocol == "rtsp" else 8080
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with CameraServer(video, protocol=protocol, port=port, host=host, fps=fps, loop=loop, faults=faults,  # type: ignore[arg-type]
                      jitter=jitter, codec=codec) as camera:
        print(f"serving {video} at {camera.url} ({camera.fps:g} fps); Ctrl-C to stop", flush=True)
        deadline = None if duration is None else time.monotonic() + duration
        try:
            while not done.is_set() and not camera.player.finished.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                done.wait(0.2)
        except KeyboardInterrupt:
            pass
        print(f"sent {camera.player.frames_sent} frames", flush=True)

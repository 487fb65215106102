"""MJPEG over HTTP (``multipart/x-mixed-replace``), the protocol of many IP cameras, in pure Python.

OpenCV's FFMPEG backend reads it (``mpjpeg`` demuxer). Being ours byte for byte, it makes fault injection
exact: a disconnect closes the listening socket and every client socket; a reconnect after it gets a
fresh server on the same port.
"""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

BOUNDARY = "frame"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], transport: MjpegTransport) -> None:
        self.transport = transport
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
        log.debug("mjpeg: " + format, *args)

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        transport = self.server.transport
        generation = transport.generation
        transport.track(self.connection, add=True)
        try:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            seq = 0
            while True:
                frame = transport.wait_frame(seq, generation)
                if frame is None:
                    return
                seq, jpeg = frame
                self.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg + b"\r\n"
                )
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            return
        finally:
            transport.track(self.connection, add=False)


class MjpegTransport:
    """Serves the latest published frame to every client at ``http://host:port/stream.mjpg``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.generation = 0
        self._cond = threading.Condition()
        self._latest: tuple[int, bytes] | None = None
        self._server: _Server | None = None
        self._clients: set[socket.socket] = set()
        self._closed = False
        self._restart_timer: threading.Timer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/stream.mjpg"

    def start(self) -> None:
        server = _Server((self.host, self.port), self)
        self.port = server.server_address[1]
        with self._cond:
            self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="mjpeg-server",
                         daemon=True).start()

    def publish(self, jpeg: bytes) -> None:
        with self._cond:
            seq = self._latest[0] + 1 if self._latest else 1
            self._latest = (seq, jpeg)
            self._cond.notify_all()

    def wait_frame(self, after_seq: int, generation: int) -> tuple[int, bytes] | None:
        """Next frame newer than ``after_seq``; None once this client's server generation is gone."""
        with self._cond:
            while True:
                if self._closed or self.generation != generation:
                    return None
                if self._latest is not None and self._latest[0] != after_seq:
                    return self._latest
                self._cond.wait(0.5)

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._cond:
            (self._clients.add if add else self._clients.discard)(conn)

    def disconnect(self, seconds: float) -> None:
        """Drop all clients and stop listening for ``seconds``, then listen again on the same port."""
        self._shutdown_server()
        log.info("mjpeg: disconnected for %.1f s", seconds)
        self._restart_timer = threading.Timer(seconds, self._restart)
        self._restart_timer.daemon = True
        self._restart_timer.start()

    def _restart(self) -> None:
        if not self._closed:
            self.start()
            log.info("mjpeg: serving again on %s", self.url)

    def _shutdown_server(self) -> None:
        with self._cond:
            server, self._server = self._server, None
            self.generation += 1
            clients = list(self._clients)
            self._cond.notify_all()
        if server is not None:
            server.shutdown()
            server.server_close()
        for conn in clients:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._closed = True
        if self._restart_timer is not None:
            self._restart_timer.cancel()
        self._shutdown_server()

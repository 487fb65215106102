"""Self-contained RTSP server run by the SYSTEM Python (``/usr/bin/python3``), which has PyGObject.

Why a separate process: GStreamer's gst-rtsp-server is only reachable through ``gi`` (python3-gi from
Debian), which lives in the system interpreter; building PyGObject into the venv would need a compiler
and the GObject headers. This script imports nothing from the repo, so it runs under any Python >= 3.9
with ``gi``.

Protocol on stdin: a stream of JPEG frames, each prefixed by its length as a 4-byte big-endian integer.
Every frame is pushed to every connected client's pipeline (one shared pipeline), timestamped on arrival, so
the parent process controls pacing, freezes and corruption. ``--codec jpeg`` sends the JPEGs as they are
(RTP/JPEG, RFC 2435); ``--codec h264`` decodes and re-encodes them with x264 (RTP/H.264, like most cameras).
With no client connected, frames are discarded, like a real camera. End of stdin stops the server.
Prints ``ready`` on stdout once listening.
"""

import argparse
import struct
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/stream")
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--codec", choices=("jpeg", "h264"), default="jpeg")
    args = parser.parse_args()

    Gst.init(None)
    loop = GLib.MainLoop()
    appsrcs = set()
    lock = threading.Lock()

    fps_caps = f"{int(round(args.fps * 1000))}/1000"
    factory = GstRtspServer.RTSPMediaFactory()
    # leaky-type=downstream + max-buffers: a client that cannot keep up loses old frames, never the server
    if args.codec == "jpeg":
        payload = "jpegparse ! rtpjpegpay name=pay0 pt=26"
    else:  # what most IP cameras send: H.264, a key frame every second, no B-frames (zerolatency)
        gop = max(1, int(round(args.fps)))
        payload = (f"jpegdec ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} "
                   f"! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1")
    factory.set_launch(
        f"( appsrc name=src is-live=true do-timestamp=true format=time max-buffers=8 leaky-type=downstream "
        f"caps=image/jpeg,framerate={fps_caps} ! {payload} )"
    )
    factory.set_shared(True)

    def on_unprepared(media, appsrc):
        with lock:
            appsrcs.discard(appsrc)

    def on_configure(_factory, media):
        appsrc = media.get_element().get_child_by_name("src")
        with lock:
            appsrcs.add(appsrc)
        media.connect("unprepared", on_unprepared, appsrc)

    factory.connect("media-configure", on_configure)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"error: cannot listen on {args.host}:{args.port}", file=sys.stderr, flush=True)
        return 1

    def feed():
        stdin = sys.stdin.buffer
        while True:
            header = stdin.read(4)
            if len(header) < 4:
                break
            (size,) = struct.unpack(">I", header)
            data = stdin.read(size)
            if len(data) < size:
                break
            with lock:
                targets = list(appsrcs)
            for appsrc in targets:
                appsrc.emit("push-buffer", Gst.Buffer.new_wrapped(data))
        GLib.idle_add(loop.quit)

    threading.Thread(target=feed, daemon=True).start()
    print("ready", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

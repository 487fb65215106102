"""Camera replay: serve a video as a live RTSP or MJPEG camera on loopback, with injectable faults."""

from sim.camera.faults import Fault
from sim.camera.server import CameraServer

__all__ = ["CameraServer", "Fault"]

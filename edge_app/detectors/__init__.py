"""Detector backends: ONNX Runtime (CPU/CUDA) and TensorRT FP16, behind one `Detector` interface."""

from edge_app.detectors.base import Detector, create_detector

__all__ = ["Detector", "create_detector"]

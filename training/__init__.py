"""Ground Truth manifests -> LST -> GluonCV SSD / YOLOv3 -> evaluated ONNX."""

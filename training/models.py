"""Build GluonCV detectors from scratch, with anchors matched to the data.

Supported ``--arch`` values:

* ``ssd_mobilenet0.25``, ``ssd_mobilenet1.0``, ``ssd_resnet18``, ``ssd_resnet50`` (SSD, any square input)
* ``yolo3_mobilenet0.25``, ``yolo3_mobilenet1.0``, ``yolo3_darknet53`` (YOLOv3, input a multiple of 32)

Why SSD is built through ``gluoncv.model_zoo.ssd.SSD`` rather than ``ssd_300_mobilenet0.25_custom``: the
preset copies VGG's anchor steps ``[8, 16, 32, 64, 100, 300]`` although MobileNet's feature maps at 300 px are
19, 10, 5, 3, 2, 1 cells (strides ~16, 30, 60, 100, 150, 300). Anchor centres are ``(i + 0.5) * step``, so
with step 8 on a 19-cell map the first layer's anchors only cover the top-left 152 px of the image and no
anchor of the two finest layers ever sits on an object in the right or bottom half. Training from scratch
then stalls (mAP ~0.2 on sim trays). Here the steps are ``input / feature_map_cells`` (measured by running the
backbone once), and the anchor ``sizes`` come from the measured box sizes (`anchor_sizes_from_boxes`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SSD_BACKBONES = {
    # arch: (gluoncv base network, feature layers taken from it, extra layer filters)
    # mobilenet0.25: GluonCV's preset uses [256, 256, 128, 128] extra filters (2.8 M params, 11 MB, mostly in
    # those extra layers); trays need none of that capacity at the coarse scales, half of it keeps the file small.
    "ssd_mobilenet0.25": ("mobilenet0.25", ["relu22_fwd", "relu26_fwd"], [128, 128, 64, 64]),
    "ssd_mobilenet1.0": ("mobilenet1.0", ["relu22_fwd", "relu26_fwd"], [512, 512, 256, 256]),
    "ssd_resnet18": ("resnet18_v1", ["stage3_activation1", "stage4_activation1"], [512, 512, 256, 256]),
    "ssd_resnet50": ("resnet50_v1", ["stage3_activation5", "stage4_activation2"], [512, 512, 256, 256]),
}
YOLO_MODELS = {
    "yolo3_mobilenet0.25": "yolo3_mobilenet0.25_custom",
    "yolo3_mobilenet1.0": "yolo3_mobilenet1.0_custom",
    "yolo3_darknet53": "yolo3_darknet53_custom",
}
ARCHITECTURES = sorted(SSD_BACKBONES) + sorted(YOLO_MODELS)
DEFAULT_RATIOS = [1.0, 2.0, 0.5]


def is_yolo(arch: str) -> bool:
    return arch.startswith("yolo3")


def anchor_sizes_from_boxes(box_sides: np.ndarray, input_size: int, num_layers: int = 6) -> list[float]:
    """``num_layers + 1`` SSD anchor sizes (px at the network input) covering the measured object sizes.

    ``box_sides`` are ``sqrt(w * h)`` of the training boxes at the network input. Layer ``i`` gets anchors of
    sizes ``s_i`` and ``sqrt(s_i * s_{i+1})``. The two finest layers (strides ~16 and ~30 px: the most cells,
    hence the most positive matches for objects of 20-80 px) split the 2nd-98th percentile of the data
    (x0.7 / x1.5: the crop/expand augmentation rescales objects by 0.6-1.6) geometrically between them; the
    coarser layers continue geometrically up to the whole image,
    so unusually large objects still find an anchor.
    """
    sides = np.asarray(box_sides, np.float64)
    if len(sides) == 0:
        lo, hi = 0.07 * input_size, 0.35 * input_size
    else:
        lo = max(6.0, 0.7 * float(np.percentile(sides, 2)))
        hi = max(lo * 1.5, 1.5 * float(np.percentile(sides, 98)))
    fine = list(np.geomspace(lo, hi, 3))
    coarse = list(np.geomspace(hi, max(hi * 2, 1.05 * input_size), num_layers + 1 - 2))[1:]
    return [round(float(s), 2) for s in fine + coarse]


def ratios_from_boxes(aspects: np.ndarray) -> list[float]:
    """Anchor aspect ratios (w/h): 1, the 20th and 80th percentiles of the data, and 2 / 0.5 for variety."""
    aspects = np.asarray(aspects, np.float64)
    if len(aspects) == 0:
        return DEFAULT_RATIOS
    lo, hi = float(np.percentile(aspects, 20)), float(np.percentile(aspects, 80))
    ratios = [1.0]
    for r in (lo, hi, 2.0, 0.5):
        if all(abs(np.log(r / q)) > 0.2 for q in ratios):
            ratios.append(round(r, 3))
    return ratios


def _feature_cells(base: str, features: Sequence[str], filters: Sequence[int], input_size: int) -> list[int]:
    """Feature-map side lengths of an SSD backbone at ``input_size`` (runs it once on zeros)."""
    import mxnet as mx
    from gluoncv.model_zoo.ssd.ssd import FeatureExpander

    expander = FeatureExpander(network=base, outputs=list(features), num_filters=list(filters),
                               pretrained=False)
    expander.initialize()
    outs = expander(mx.nd.zeros((1, 3, input_size, input_size)))
    return [int(o.shape[2]) for o in outs]


def build_net(arch: str, classes: Sequence[str], input_size: int, *, sizes: Sequence[float] | None = None,
              ratios: Sequence[float] | None = None):
    """A freshly initialised (from scratch) GluonCV detector. Returns ``(net, anchor_config)``."""
    import mxnet as mx
    from gluoncv import model_zoo
    from gluoncv.model_zoo.ssd.ssd import SSD

    if arch in SSD_BACKBONES:
        base, features, filters = SSD_BACKBONES[arch]
        cells = _feature_cells(base, features, filters, input_size)
        steps = [input_size / c for c in cells]
        num_layers = len(cells)
        sizes = list(sizes) if sizes else anchor_sizes_from_boxes(np.array([]), input_size, num_layers)
        ratio_list = list(ratios) if ratios else DEFAULT_RATIOS
        net = SSD(base, input_size, features=features, num_filters=filters, sizes=sizes,
                                ratios=[ratio_list] * num_layers, steps=steps, classes=list(classes),
                                pretrained=False, anchor_alloc_size=max(32, cells[0]))
        net.initialize()
        anchors = {"sizes": sizes, "ratios": ratio_list, "steps": [round(s, 3) for s in steps], "cells": cells}
    elif arch in YOLO_MODELS:
        if input_size % 32:
            raise ValueError(f"YOLOv3 input size must be a multiple of 32, got {input_size}")
        net = model_zoo.get_model(YOLO_MODELS[arch], classes=list(classes), pretrained_base=False, transfer=None)
        net.initialize()
        anchors = {"anchors": "gluoncv default (COCO) anchors"}
    else:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    net.collect_params().reset_ctx(mx.cpu())
    return net, anchors

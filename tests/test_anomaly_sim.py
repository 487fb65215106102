"""`edge-app sim anomalies`: deterministic parts with a ground-truth mask for every defect type."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from sim.anomaly_parts import DEFECTS, PARTS, Pose, render_part, write_dataset


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.png"))}


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path) -> None:
    kwargs = {"parts": ("label",), "n_train": 2, "n_test_normal": 1, "n_test_abnormal": 3, "size": 96}
    write_dataset(tmp_path / "a", seed=4, **kwargs)
    write_dataset(tmp_path / "b", seed=4, **kwargs)
    write_dataset(tmp_path / "c", seed=5, **kwargs)
    a, b, c = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert a == b
    assert set(a) == set(c) and a != c
    assert sorted(a) == ["label/test/abnormal/000_misprint.png", "label/test/abnormal/001_stain.png",
                         "label/test/abnormal/002_scratch.png", "label/test/mask/000_misprint.png",
                         "label/test/mask/001_stain.png", "label/test/mask/002_scratch.png",
                         "label/test/normal/000.png", "label/train/normal/000.png", "label/train/normal/001.png"]


@pytest.mark.parametrize("part", PARTS)
def test_every_defect_has_a_mask_where_the_image_changed(part: str) -> None:
    for i, defect in enumerate(DEFECTS[part]):
        pose = Pose(2.0, -1.0, 1.0)
        clean, clean_mask = render_part(part, np.random.default_rng(i), None, 256, pose=pose, lighting=False)
        bad, mask = render_part(part, np.random.default_rng(i), defect, 256, pose=pose, lighting=False)
        assert clean_mask.max() == 0
        defect_pixels = mask > 0
        assert 10 < defect_pixels.sum() < 0.1 * mask.size, (part, defect)
        changed = np.abs(bad.astype(int) - clean.astype(int)).max(axis=2) > 25
        # the mask covers what changed (a 2-pixel tolerance for anti-aliased edges) ...
        near_mask = cv2.dilate(mask, np.ones((5, 5), np.uint8)) > 0
        assert (changed & ~near_mask).sum() <= 0.02 * max(changed.sum(), 1), (part, defect)
        # ... and the image did change under the mask
        assert changed[defect_pixels].mean() > 0.2 or np.abs(bad.astype(int) - clean.astype(int))[
            defect_pixels].mean() > 8, (part, defect)


def test_unknown_part_or_defect_is_refused() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown part"):
        render_part("gear", rng)
    with pytest.raises(ValueError, match="unknown defect"):
        render_part("carrier", rng, "scratch")

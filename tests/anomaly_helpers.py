"""Shared material for the anomaly tests: a small sim dataset and a model trained on it, cached on disk.

The cache key is a hash of the anomaly code and the part renderer, so a code change retrains instead of
testing a stale model. Training uses 20 normal carrier images at 256x256 (about ten seconds, once).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from conftest import CACHE, REPO

from edge_app.anomaly.train import TrainOptions, train_model
from sim.anomaly_parts import write_dataset

TEST_SIZE = 256


def _code_hash() -> str:
    digest = hashlib.sha256()
    sources = [REPO / "sim" / "anomaly_parts.py", Path(__file__)]
    for path in sorted((REPO / "edge_app" / "anomaly").glob("*.py")) + sources:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def cached_dataset_and_model() -> tuple[Path, Path]:
    """``(<part root>, <model dir>)`` for the carrier part: 20 train normal, 6 test normal, 6 test abnormal."""
    root = CACHE / f"anomaly-{_code_hash()}"
    part, model = root / "data" / "carrier", root / "model"
    if not (model / "model.json").is_file():
        shutil.rmtree(root, ignore_errors=True)
        write_dataset(root / "data", ("carrier",), n_train=20, n_test_normal=6, n_test_abnormal=6, seed=3)
        train_model(part, root / "model.tmp", options=TrainOptions(size=TEST_SIZE))
        (root / "model.tmp").rename(model)
    return part, model

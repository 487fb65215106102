"""Evaluation gate: the promotion rule, the report, and registration of the candidate's Panorama package
version through the Panorama module (botocore Stubber on the vendored model + moto S3). The models' mAPs come
from a stand-in evaluator here; tests/test_flywheel_loop.py runs the gate on real trained ONNX models."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

sys.path.insert(0, str(Path(__file__).resolve().parent))
from panorama_helpers import copy_project, fake_container_tar, tiny_mxnet_export  # noqa: E402
from test_panorama_deploy import BUCKET, REGION, stub_publish  # noqa: E402

import training.evaluate  # noqa: E402
from edge_app.errors import EdgeAppError  # noqa: E402
from edge_app.panorama.aws import panorama_client  # noqa: E402
from training.evaluate import EvalResult  # noqa: E402
from training.gate import PanoramaTarget, decide, run_gate  # noqa: E402

ACCOUNT = "210987654321"


def test_rule() -> None:
    assert decide(0.80, 0.80, 0.01)[0] is True
    assert decide(0.795, 0.80, 0.01)[0] is True  # within the margin
    promote, reason = decide(0.78, 0.80, 0.01)
    assert promote is False and "kept the deployed model" in reason
    assert decide(0.10, None, 0.01) == (True, "no deployed model to compare with: the first model is promoted")
    assert decide(0.80, 0.80, 0.0)[0] is True and decide(0.7999, 0.80, 0.0)[0] is False


@pytest.fixture
def fake_eval(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """mAP per model file name; a one-image LST with one box as held-out data."""
    maps = {}

    def evaluate_onnx(model, samples, **_):  # noqa: ANN001, ANN003
        return EvalResult(str(model), maps[Path(model).name], {"tray": maps[Path(model).name]}, len(samples),
                          sum(len(s.boxes) for s in samples))

    monkeypatch.setattr(training.evaluate, "evaluate_onnx", evaluate_onnx)
    (tmp_path / "img.jpg").write_bytes(b"")
    lst = tmp_path / "test.lst"
    lst.write_text("0\t4\t5\t100\t80\t0\t0.1\t0.1\t0.5\t0.5\timg.jpg\n")
    return maps, lst


@pytest.fixture
def panorama(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        client = panorama_client(REGION)
        stubber = Stubber(client)
        target = PanoramaTarget(copy_project(tmp_path / "project"), client, s3, account=ACCOUNT,
                                container_tar=fake_container_tar(tmp_path / "c.tar"), build_dir=tmp_path / "build")
        with stubber:
            yield target, stubber
        stubber.assert_no_pending_responses()


def test_worse_candidate_is_refused_and_nothing_registered(fake_eval, panorama, tmp_path: Path) -> None:
    maps, lst = fake_eval
    maps.update({"new.onnx": 0.70, "old.onnx": 0.80})
    target, _ = panorama  # no stubbed response: any Panorama call would fail the test
    decision = run_gate(tmp_path / "new.onnx", tmp_path / "old.onnx", [lst], margin=0.02, out_dir=tmp_path / "r",
                        target=target)
    assert decision.promote is False and decision.registered is None
    report = json.loads((tmp_path / "r" / "gate.json").read_text())
    assert (report["candidate_map"], report["deployed_map"], report["delta"]) == (0.7, 0.8, -0.1)
    assert report["images"] == 1 and report["gt_boxes"] == 1
    md = (tmp_path / "r" / "gate.md").read_text()
    assert "REFUSED" in md and "| candidate |" in md and "0.7000" in md and "0.8000" in md
    assert not (tmp_path / "build").exists()


def test_promotion_registers_the_new_package_version(fake_eval, panorama, tmp_path: Path) -> None:
    maps, lst = fake_eval
    maps.update({"tray_detector.onnx": 0.795, "old.onnx": 0.80})
    target, stubber = panorama
    prefix = tiny_mxnet_export(tmp_path / "cand", name="tray_detector", payload=b"new-weights")
    # the release the gate will build is only known after the build: stub the calls from a dry build's info
    from edge_app.panorama.build import build

    dry = build(target.root, account=ACCOUNT, container_tar=target.container_tar, model_prefix=prefix,
                build_dir=tmp_path / "dry")
    stub_publish(stubber, dry, exists=False)
    decision = run_gate(prefix.with_suffix(".onnx"), tmp_path / "old.onnx", [lst], margin=0.01,
                        out_dir=tmp_path / "r", target=target)
    assert decision.promote and decision.registered["version"] == dry.version
    assert sorted(p["name"] for p in decision.registered["packages"]) == sorted(
        p["name"] for p in dry.info["packages"])
    assert all(not p["skipped"] for p in decision.registered["packages"])
    md = (tmp_path / "r" / "gate.md").read_text()
    assert "PROMOTED" in md and f"registered Panorama package version {dry.version}" in md


def test_no_held_out_boxes_is_an_error(fake_eval, tmp_path: Path) -> None:
    empty = tmp_path / "empty.lst"
    empty.write_text("0\t4\t5\t100\t80\t-1\t0\t0\t0\t0\timg.jpg\n")
    with pytest.raises(EdgeAppError, match="no held-out boxes"):
        run_gate(tmp_path / "a.onnx", None, [empty], margin=0.01, out_dir=tmp_path / "r")

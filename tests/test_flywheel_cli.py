"""The flywheel's commands as a user runs them: `edge-app collect`, `label setup --dry-run`, `dataset stats`,
`gate` errors (typer's CliRunner on the real `edge-app` app; AWS is moto)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import cv2
import numpy as np
import pytest
import yaml
from conftest import REPO
from moto import mock_aws
from typer.testing import CliRunner

from edge_app.cli import app
from edge_app.errors import EdgeAppError

GT = Path("/work/shared/fixtures/gt")


def test_collect_spool_only(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (160, 120))
    for i in range(25):
        frame = np.zeros((120, 160, 3), np.uint8)
        cv2.rectangle(frame, (5 * i, 20), (5 * i + 40, 80), (255, 255, 255), -1)
        writer.write(frame)
    writer.release()
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({"model": {"path": "m.onnx"}, "state_dir": "state",
                                      "streams": [{"name": "cam", "uri": "v.mp4", "roi": [[0, 0], [160, 0],
                                                                                          [160, 100]]}]}))
    result = CliRunner().invoke(app, ["collect", "--config", str(config), "--every", "1"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["streams"]["cam"]["saved"] == 5 and summary["pending"] == 5  # no bucket: kept in the spool
    assert len(list((tmp_path / "state" / "collect" / "pending").glob("*.jpg"))) == 5


def test_label_setup_dry_run_prints_the_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    settings = yaml.safe_load((REPO / "configs" / "flywheel.yaml").read_text())
    path = tmp_path / "flywheel.yaml"
    path.write_text(yaml.safe_dump(settings))
    with mock_aws():
        boto3.client("s3", region_name="eu-west-1").create_bucket(
            Bucket=settings["bucket"], CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        result = CliRunner().invoke(app, ["label", "setup", "--settings", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["job_status"] == "not created (dry run)" and summary["notification_prefix"] == "collect/"
    request = json.loads(result.output[: result.output.rindex("\n{")])
    assert request["InputConfig"]["DataSource"]["SnsDataSource"]["SnsTopicArn"] == summary["input_topic"]
    assert request["HumanTaskConfig"]["PreHumanTaskLambdaArn"].endswith(":568282634449:function:PRE-BoundingBox")


@pytest.mark.skipif(not GT.is_dir(), reason="shared GT fixtures not present")
def test_dataset_stats_command(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["dataset", "stats", str(GT / "nishantkarve__ObjectDetection__train.manifest"),
                                      "--png", str(tmp_path / "s.png"), "--json", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["images"] == 11 and stats["negatives"] == 1 and list(stats["per_class"]) == ["bee"]
    assert "Boxes per class" in result.output and (tmp_path / "s.png").stat().st_size > 10_000


def test_gate_without_held_out_boxes_is_an_error(tmp_path: Path) -> None:
    lst = tmp_path / "test.lst"
    lst.write_text("0\t4\t5\t100\t80\t-1\t0\t0\t0\t0\timg.jpg\n")
    result = CliRunner().invoke(app, ["gate", "--candidate", str(tmp_path / "m.onnx"), "--data", str(lst)])
    assert isinstance(result.exception, EdgeAppError) and "no held-out boxes" in str(result.exception)

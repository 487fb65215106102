"""The bundling Lambda: GT output manifest in S3 -> line-split LST channels -> SageMaker training job.

moto provides S3 and SageMaker (the created job is read back with describe_training_job); the handler runs as
AWS Lambda would call it, with the settings in $FLYWHEEL_SETTINGS."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import cv2
import numpy as np
import pytest
from moto import mock_aws

from edge_app.errors import EdgeAppError
from sim.manifest import manifest_line
from training.lambda_bundle import handler
from training.lst import read_lst

REGION = "us-east-1"
BUCKET = "plant-flywheel"
SETTINGS = {
    "region": REGION, "bucket": BUCKET, "upload_prefix": "collect",
    "labeling": {"job_name": "trays-stream", "role_arn": "arn:aws:iam::123456789012:role/GroundTruthRole",
                 "workteam_arn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/plant"},
    "training": {"role_arn": "arn:aws:iam::123456789012:role/SageMakerRole",
                 "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/gluoncv:0.10",
                 "source_s3": f"s3://{BUCKET}/code/sourcedir.tar.gz", "val_lines": ["line-2"],
                 "test_lines": ["line-3"], "hyperparameters": {"epochs": 30, "arch": "ssd_mobilenet0.25"}},
}


def put_frames(s3, lines: dict[str, int]) -> list[str]:
    """JPEGs under the collector's layout; returns GT output-manifest lines (one failure record included)."""
    manifest = []
    for line, n in lines.items():
        for i in range(n):
            key = f"collect/{line}/cam-{line[-1]}/2026-11-2{i % 3}/cam-{i}.jpg"
            img = np.full((60, 80, 3), 40 * i % 255, np.uint8)
            s3.put_object(Bucket=BUCKET, Key=key, Body=cv2.imencode(".jpg", img)[1].tobytes())
            boxes = [(5 + i, 5, 30 + i, 40)] if i % 4 else []  # every 4th image a negative
            manifest.append(manifest_line(f"s3://{BUCKET}/{key}", 80, 60, boxes, line, 1, 60.0 * i))
    failed = json.loads(manifest[0])
    failed["source-ref"] = failed["source-ref"].replace("cam-0.jpg", "cam-99.jpg")
    failed["bounding-box-metadata"]["failure-reason"] = "ClientError: worker timeout"
    manifest.append(json.dumps(failed) + "\n")
    return manifest


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("FLYWHEEL_SETTINGS", json.dumps(SETTINGS))
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        yield s3


def test_handler_bundles_by_line_and_starts_training(aws, tmp_path: Path) -> None:
    s3 = aws
    lines = put_frames(s3, {"line-1": 6, "line-2": 3, "line-3": 3, "line-4": 4})
    # a streaming job writes its output in several files under one prefix
    prefix = "labels/trays-stream/manifests/output"
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/part-1.manifest", Body="".join(lines[:7]).encode())
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/part-2.manifest", Body="".join(lines[7:]).encode())
    result = handler({"manifest": f"s3://{BUCKET}/{prefix}/", "job_name": "tray-detector-test-1"}, None)

    assert result["groups"] == {"train": ["line-1", "line-4"], "val": ["line-2"], "test": ["line-3"]}
    assert {k: v["images"] for k, v in result["counts"].items()} == {"train": 10, "val": 3, "test": 3}
    assert result["failed_labels_dropped"] == 1  # a failed label is not a negative
    assert result["class_names"] == ["tray"]
    root = "bundles/tray-detector-test-1"
    assert result["channels"]["train"] == f"s3://{BUCKET}/{root}/train/"
    # the channel is self-contained: every LST path resolves inside it
    lst_path = tmp_path / "train.lst"
    s3.download_file(BUCKET, f"{root}/train/train.lst", str(lst_path))
    records = read_lst(lst_path)
    assert len(records) == 10
    for rec in records:
        assert rec.path.startswith(f"{BUCKET}/collect/line-1/") or rec.path.startswith(f"{BUCKET}/collect/line-4/")
        s3.head_object(Bucket=BUCKET, Key=f"{root}/train/{rec.path}")
    assert sum(len(r.boxes) == 0 for r in records) == 3  # negatives kept (i = 0, 4 of line-1; 0 of line-4)
    split = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{root}/split.json")["Body"].read())
    assert not set(split["images"]["train"]) & set(split["images"]["test"])

    job = boto3.client("sagemaker", region_name=REGION).describe_training_job(TrainingJobName="tray-detector-test-1")
    assert job["TrainingJobArn"] == result["training_job_arn"]
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]}
    assert channels == {"train": f"s3://{BUCKET}/{root}/train/", "validation": f"s3://{BUCKET}/{root}/val/"}
    hps = job["HyperParameters"]
    assert json.loads(hps["sagemaker_program"]) == "train.py"
    assert json.loads(hps["sagemaker_submit_directory"]) == f"s3://{BUCKET}/code/sourcedir.tar.gz"
    assert json.loads(hps["classes"]) == "tray" and json.loads(hps["epochs"]) == 30
    assert job["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/models/"


def test_handler_errors_are_clear(aws) -> None:
    with pytest.raises(EdgeAppError, match="no output manifest"):
        handler({"manifest": f"s3://{BUCKET}/labels/nothing-here/"}, None)
    with pytest.raises(EdgeAppError, match="expected an s3:// URI"):
        handler({"manifest": "/tmp/output.manifest"}, None)


def test_lambda_path_imports_no_heavy_libraries() -> None:
    """The Lambda zip needs numpy, pydantic and PyYAML only (boto3 is in the runtime): no OpenCV, MXNet, ONNX."""
    import subprocess
    import sys

    code = ("import sys, training.lambda_bundle as b; b.handler; "
            "print(sorted(m for m in ('cv2', 'mxnet', 'gluoncv', 'onnx', 'onnxruntime', 'matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_without_a_manifest_the_running_streaming_jobs_output_is_used(aws, tmp_path: Path) -> None:
    """No 'manifest' in the event: DescribeLabelingJob; a streaming job still in progress has no
    OutputDatasetS3Uri yet, so its manifests/output/ prefix is read (botocore Stubber for SageMaker)."""
    from botocore.stub import Stubber

    from training.flywheel.settings import parse_settings
    from training.lambda_bundle import bundle

    s3 = aws
    lines = put_frames(s3, {"line-1": 4, "line-2": 2, "line-3": 2})
    s3.put_object(Bucket=BUCKET, Key="labels/trays-stream/manifests/output/output.manifest",
                  Body="".join(lines).encode())
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    stubber = Stubber(sagemaker)
    request = {"SnsDataSource": {"SnsTopicArn": "arn:aws:sns:us-east-1:123456789012:edge-app-GroundTruth-input"}}
    stubber.add_response("describe_labeling_job", {
        "LabelingJobStatus": "InProgress", "LabelCounters": {"TotalLabeled": 8}, "CreationTime": "2026-11-23T08:00:00Z",
        "LastModifiedTime": "2026-11-23T14:00:00Z", "JobReferenceCode": "ref", "LabelingJobName": "trays-stream",
        "LabelingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:labeling-job/trays-stream",
        "InputConfig": {"DataSource": request}, "OutputConfig": {"S3OutputPath": f"s3://{BUCKET}/labels/"},
        "RoleArn": SETTINGS["labeling"]["role_arn"],
        "HumanTaskConfig": {"WorkteamArn": SETTINGS["labeling"]["workteam_arn"],
                            "UiConfig": {"UiTemplateS3Uri": f"s3://{BUCKET}/t.html"}, "TaskTitle": "t",
                            "TaskDescription": "d", "NumberOfHumanWorkersPerDataObject": 1,
                            "TaskTimeLimitInSeconds": 600}}, {"LabelingJobName": "trays-stream"})
    stubber.add_response("create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:"
                                                                   "training-job/tray-detector-x"})
    with stubber:
        result = bundle({"job_name": "tray-detector-x"}, parse_settings(SETTINGS, "test"), s3=s3, sagemaker=sagemaker,
                        work_dir=tmp_path)
    stubber.assert_no_pending_responses()
    assert result["training_job_arn"].endswith("training-job/tray-detector-x")
    assert result["manifest_summary"]["images"] == 8 and result["groups"]["test"] == ["line-3"]

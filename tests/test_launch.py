"""SageMaker launcher: the CreateTrainingJob request is checked against the real API model with botocore Stubber."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from edge_app.errors import EdgeAppError
from training.launch import TrainingJobSpec, build_request, create_training_job

ARN = "arn:aws:sagemaker:eu-west-1:123456789012:training-job/tray-ssd-1"


def _spec(**kw) -> TrainingJobSpec:
    base = dict(job_name="tray-ssd-1", role_arn="arn:aws:iam::123456789012:role/SageMakerRole",
                image_uri="123456789012.dkr.ecr.eu-west-1.amazonaws.com/gluoncv-train:latest",
                train_s3="s3://plant-data/split/train/", validation_s3="s3://plant-data/split/val/",
                output_s3="s3://plant-models/jobs/", source_s3="s3://plant-models/src/training.tar.gz",
                hyperparameters={"arch": "ssd_mobilenet0.25", "epochs": 40, "lr": 0.003})
    base.update(kw)
    return TrainingJobSpec(**base)


def test_create_training_job_request_matches_api_and_script_mode() -> None:
    client = boto3.client("sagemaker", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    expected = build_request(_spec())
    with Stubber(client) as stub:  # Stubber validates the params against the service model
        stub.add_response("create_training_job", {"TrainingJobArn": ARN}, expected)
        assert create_training_job(_spec(), client=client) == ARN
        stub.assert_no_pending_responses()
    hps = expected["HyperParameters"]
    assert json.loads(hps["sagemaker_program"]) == "train.py"
    assert json.loads(hps["sagemaker_submit_directory"]) == "s3://plant-models/src/training.tar.gz"
    assert json.loads(hps["epochs"]) == 40 and json.loads(hps["arch"]) == "ssd_mobilenet0.25"
    assert [c["ChannelName"] for c in expected["InputDataConfig"]] == ["train", "validation"]
    assert expected["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"


def test_spot_adds_max_wait_and_aws_errors_are_one_line() -> None:
    request = build_request(_spec(spot=True, validation_s3=None))
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"]["MaxWaitTimeInSeconds"] >= request["StoppingCondition"]["MaxRuntimeInSeconds"]
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["train"]
    client = boto3.client("sagemaker", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    with Stubber(client) as stub:
        stub.add_client_error("create_training_job", service_error_code="ResourceLimitExceeded",
                              service_message="quota of ml.c5.2xlarge reached")
        with pytest.raises(EdgeAppError, match="ResourceLimitExceeded: quota"):
            create_training_job(_spec(), client=client)


@pytest.mark.parametrize("change, message", [
    ({"job_name": "bad_name!"}, "job_name"),
    ({"train_s3": "/local/path"}, "train_s3"),
    ({"role_arn": "SageMakerRole"}, "role_arn"),
])
def test_bad_specs_rejected_before_any_call(change: dict, message: str) -> None:
    with pytest.raises(EdgeAppError, match=message):
        build_request(_spec(**change))


def test_train_script_reads_sagemaker_environment(monkeypatch, tmp_path) -> None:
    from training.train import build_parser

    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(tmp_path / "train"))
    monkeypatch.setenv("SM_CHANNEL_VALIDATION", str(tmp_path / "val"))
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "model"))
    args = build_parser().parse_args(["--epochs", "3", "--resume", "False"])  # how script mode passes them
    assert (args.train, args.validation, args.model_dir) == (str(tmp_path / "train"), str(tmp_path / "val"),
                                                            str(tmp_path / "model"))
    assert args.epochs == 3 and args.resume is False

"""Create a SageMaker training job that runs ``training/train.py`` in script mode (boto3 ``create_training_job``).

Script mode with a framework container: the source tarball's S3 URI goes into the special hyperparameter
``sagemaker_submit_directory`` and the entry point into ``sagemaker_program``; every hyperparameter value is
JSON-encoded (the containers ``json.loads`` them before turning them into ``--key value`` arguments). Data
channels ``train`` / ``validation`` become ``SM_CHANNEL_TRAIN`` / ``SM_CHANNEL_VALIDATION`` inside the job;
``/opt/ml/model`` (``SM_MODEL_DIR``) is uploaded to ``output_s3`` at the end, and ``/opt/ml/checkpoints`` is
synced to ``<output_s3>/checkpoints`` so spot interruptions resume (train.py resumes from there).

Tested with botocore's Stubber (tests/test_launch.py): no AWS account needed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from edge_app.errors import EdgeAppError

JOB_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


@dataclass
class TrainingJobSpec:
    job_name: str
    role_arn: str
    image_uri: str
    train_s3: str
    output_s3: str
    validation_s3: str | None = None
    source_s3: str | None = None
    entry_point: str = "train.py"
    instance_type: str = "ml.c5.2xlarge"
    instance_count: int = 1
    volume_gb: int = 30
    max_runtime_s: int = 3 * 3600
    hyperparameters: dict[str, str] = field(default_factory=dict)
    spot: bool = False
    region: str | None = None


def _check_s3(name: str, uri: str | None) -> None:
    if uri is not None and not uri.startswith("s3://"):
        raise EdgeAppError(f"{name}: expected an s3:// URI, got {uri!r}")


def build_request(spec: TrainingJobSpec) -> dict:
    """The ``CreateTrainingJob`` request for ``spec`` (validated, nothing sent)."""
    if not JOB_NAME_RE.match(spec.job_name):
        raise EdgeAppError(f"job_name: expected 1-63 letters, digits or hyphens, got {spec.job_name!r}")
    if not spec.role_arn.startswith("arn:aws"):
        raise EdgeAppError(f"role_arn: expected an IAM role ARN, got {spec.role_arn!r}")
    for name in ("train_s3", "output_s3", "validation_s3", "source_s3"):
        _check_s3(name, getattr(spec, name))
    hps = {k: json.dumps(v) for k, v in spec.hyperparameters.items()}
    if spec.source_s3:
        hps["sagemaker_submit_directory"] = json.dumps(spec.source_s3)
        hps["sagemaker_program"] = json.dumps(spec.entry_point)
    channels = [("train", spec.train_s3)] + ([("validation", spec.validation_s3)] if spec.validation_s3 else [])
    request = {
        "TrainingJobName": spec.job_name,
        "AlgorithmSpecification": {"TrainingImage": spec.image_uri, "TrainingInputMode": "File",
                                   "MetricDefinitions": [
                                       {"Name": "validation:mAP", "Regex": r"val mAP ([0-9.]+)"},
                                       {"Name": "train:loss", "Regex": r"epoch \d+: loss ([0-9.]+)"}]},
        "RoleArn": spec.role_arn,
        "InputDataConfig": [
            {"ChannelName": name, "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}},
             "InputMode": "File"}
            for name, uri in channels
        ],
        "OutputDataConfig": {"S3OutputPath": spec.output_s3},
        "ResourceConfig": {"InstanceType": spec.instance_type, "InstanceCount": spec.instance_count,
                           "VolumeSizeInGB": spec.volume_gb},
        "StoppingCondition": {"MaxRuntimeInSeconds": spec.max_runtime_s},
        "HyperParameters": hps,
        "CheckpointConfig": {"S3Uri": spec.output_s3.rstrip("/") + "/checkpoints",
                             "LocalPath": "/opt/ml/checkpoints"},
    }
    if spec.spot:
        request["EnableManagedSpotTraining"] = True
        request["StoppingCondition"]["MaxWaitTimeInSeconds"] = spec.max_runtime_s * 2
    return request


def create_training_job(spec: TrainingJobSpec, client=None) -> str:
    """Send ``CreateTrainingJob``; returns the job ARN. AWS errors become one `EdgeAppError` line."""
    import boto3
    import botocore.exceptions

    request = build_request(spec)
    sagemaker = client or boto3.client("sagemaker", region_name=spec.region)
    try:
        return sagemaker.create_training_job(**request)["TrainingJobArn"]
    except botocore.exceptions.ClientError as exc:
        err = exc.response.get("Error", {})
        raise EdgeAppError(f"sagemaker: create_training_job {spec.job_name}: {err.get('Code')}: "
                           f"{err.get('Message')}") from None
    except botocore.exceptions.NoCredentialsError:
        raise EdgeAppError("sagemaker: no AWS credentials (configure a profile to launch remote training)") from None

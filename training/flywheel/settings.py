"""One settings document for the whole flywheel (``configs/flywheel.yaml``), validated by pydantic.

The same document drives ``edge-app label setup`` (resources and the labeling job), the bundling Lambda
(``FLYWHEEL_SETTINGS`` environment variable holding it as JSON) and the gate's margin, so the S3 layout the
collector writes, the prefix the labeling job watches and the split the training uses cannot drift apart.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_app.config import format_validation_error
from edge_app.errors import EdgeAppError

NAME = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelingSettings(Strict):
    job_name: Annotated[str, Field(pattern=NAME)] = "tray-boxes-streaming"
    role_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z\-]*:iam::\d{12}:role/.+")]
    workteam_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:\d{12}:workteam/.+")]
    label_attribute: Annotated[str, Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,126}$")] = "bounding-box"
    """Key of the labels in the output manifest (``-ref`` / ``-metadata`` suffixes are reserved by Ground Truth)."""
    classes: Annotated[list[str], Field(min_length=1)] = ["tray"]
    output_prefix: str = "labels"
    config_prefix: str = "labeling-config"
    input_topic: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,256}$")] = "edge-app-GroundTruth-input"
    """Names contain 'GroundTruth' so the managed AmazonSageMakerGroundTruthExecution policy may subscribe."""
    output_topic: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,256}$")] = "edge-app-GroundTruth-output"
    task_title: str = "Draw a box around every packed tray"
    task_description: str = "Box each tray in the bin; skip trays hidden by more than half."
    workers_per_object: Annotated[int, Field(ge=1, le=9)] = 1
    task_time_limit_s: Annotated[int, Field(ge=30, le=28800)] = 600
    task_availability_s: Annotated[int, Field(ge=60, le=864000)] = 864000
    max_concurrent_tasks: Annotated[int, Field(ge=1, le=5000)] = 200


class TrainingSettings(Strict):
    role_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z\-]*:iam::\d{12}:role/.+")]
    image_uri: str
    source_s3: str | None = None
    """``s3://.../sourcedir.tar.gz`` of training/ (script mode's ``sagemaker_submit_directory``)."""
    job_prefix: Annotated[str, Field(pattern=r"^[a-zA-Z0-9-]{1,40}$")] = "tray-detector"
    bundle_prefix: str = "bundles"
    output_prefix: str = "models"
    instance_type: str = "ml.c5.2xlarge"
    max_runtime_s: Annotated[int, Field(ge=60)] = 3 * 3600
    spot: bool = False
    hyperparameters: dict[str, str | int | float | bool] = {}
    val_lines: list[str] = []
    test_lines: list[str] = []
    """Held-out lines (the gate evaluates on them); empty: a seeded choice by fraction."""
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2
    test_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2
    seed: int = 0


class GateSettings(Strict):
    margin: Annotated[float, Field(ge=0, le=1)] = 0.01
    """A candidate is promoted when its mAP >= the deployed model's mAP - margin (absolute mAP points)."""


class FlywheelSettings(Strict):
    region: str = "us-east-1"
    bucket: Annotated[str, Field(min_length=3, max_length=63)]
    upload_prefix: str = "collect"
    """Where the collector uploads (``<prefix>/<line>/<stream>/<day>/...jpg``); the labeling job watches it."""
    labeling: LabelingSettings | None = None
    training: TrainingSettings | None = None
    gate: GateSettings = GateSettings()

    @property
    def line_regex(self) -> str:
        """The split's group regex: the path segment after the upload prefix is the packaging line."""
        import re

        return rf"^s3://{re.escape(self.bucket)}/{re.escape(self.upload_prefix.strip('/'))}/([^/]+)/"


def parse_settings(raw: object, source: str) -> FlywheelSettings:
    if not isinstance(raw, dict):
        raise EdgeAppError(f"{source}: expected a mapping of settings, got {type(raw).__name__}")
    try:
        return FlywheelSettings.model_validate(raw)
    except ValidationError as exc:
        raise EdgeAppError(format_validation_error(source, exc)) from None


def load_settings(path: Path) -> FlywheelSettings:
    path = Path(path)
    if not path.is_file():
        raise EdgeAppError(f"{path}: flywheel settings not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise EdgeAppError(f"{path}: not valid YAML ({exc})") from None
    return parse_settings(raw, str(path))


def settings_from_env(env_var: str = "FLYWHEEL_SETTINGS") -> FlywheelSettings:
    """The Lambda's settings: JSON in ``$FLYWHEEL_SETTINGS``."""
    text = os.environ.get(env_var)
    if not text:
        raise EdgeAppError(f"${env_var}: not set (expected the flywheel settings as JSON)")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EdgeAppError(f"${env_var}: not valid JSON ({exc.msg})") from None
    return parse_settings(raw, f"${env_var}")

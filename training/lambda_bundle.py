"""The bundling Lambda: labeling job output -> line-split LST channels in S3 -> a SageMaker training job.

``handler(event, context)`` is a plain function (AWS Lambda's Python runtime calls it; so can a laptop, see
``edge-app label bundle``). The article's flow: "Once the labeling job is completed, we manually trigger an AWS
Lambda function. This Lambda function bundles images and their corresponding labels from the output manifest
into an LST file. Our training and test files had images collected from different packaging lines ... The
Lambda function then triggers an Amazon SageMaker training job." Steps:

1. find the output manifests: ``event["manifest"]`` (an ``s3://`` file, or a prefix read recursively, since a
   streaming job keeps adding output), else the labeling job's (``describe_labeling_job``:
   ``LabelingJobOutput.OutputDatasetS3Uri``, or ``<S3OutputPath>/<job>/manifests/output/`` while a streaming
   job is still running);
2. read them with `training.manifest` (records whose labeling *failed* are dropped: a failure is "no label",
   not "no tray");
3. group images by packaging line (the S3 key segment after the upload prefix, see `FlywheelSettings.line_regex`),
   assign whole lines to train/val/test (`training.split`), refuse any leak;
4. per split, a self-contained channel ``<bundle>/<split>/``: ``<split>.lst`` (`training.lst`, paths
   ``<bucket>/<key>``) and the images server-side copied to ``<bundle>/<split>/<bucket>/<key>``, which is where
   the LST's relative paths point once SageMaker has downloaded the channel;
5. ``split.json`` and ``bundle.json`` next to the channels; then ``CreateTrainingJob`` through
   `training.launch` (script mode ``train.py``; train + validation channels; the test channel stays for the gate).

The settings come from ``$FLYWHEEL_SETTINGS`` (JSON of `FlywheelSettings`) or ``event["settings"]``.
"""

from __future__ import annotations

import json
import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_app.errors import EdgeAppError
from training.flywheel.settings import FlywheelSettings, parse_settings, settings_from_env
from training.s3cache import fetch, split_s3_uri

log = logging.getLogger(__name__)

MANIFEST_SUFFIXES = (".manifest", ".jsonl", ".json")


def _list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return sorted(keys)


def manifest_uris(event: dict, settings: FlywheelSettings, s3: Any, sagemaker: Any) -> list[str]:
    """The output manifest file(s) to bundle (see module docstring, step 1)."""
    uri = event.get("manifest")
    if not uri:
        job = event.get("labeling_job_name") or (settings.labeling.job_name if settings.labeling else None)
        if not job:
            raise EdgeAppError("event: give 'manifest' (s3:// URI) or 'labeling_job_name'")
        found = sagemaker.describe_labeling_job(LabelingJobName=job)
        uri = (found.get("LabelingJobOutput") or {}).get("OutputDatasetS3Uri")
        if not uri:
            uri = found["OutputConfig"]["S3OutputPath"].rstrip("/") + f"/{job}/manifests/output/"
    if not str(uri).startswith("s3://"):
        raise EdgeAppError(f"manifest: expected an s3:// URI, got {uri!r}")
    if uri.endswith(MANIFEST_SUFFIXES):
        return [uri]
    bucket, prefix = split_s3_uri(uri)
    files = [f"s3://{bucket}/{k}" for k in _list_keys(s3, bucket, prefix) if k.endswith(MANIFEST_SUFFIXES)]
    if not files:
        raise EdgeAppError(f"{uri}: no output manifest (*.manifest, *.jsonl) under this prefix yet")
    return files


def bundle_name(settings: FlywheelSettings, now: datetime) -> str:
    assert settings.training is not None
    return f"{settings.training.job_prefix}-{now:%Y%m%d-%H%M%S}"


def bundle(event: dict, settings: FlywheelSettings, *, s3: Any, sagemaker: Any, work_dir: Path,
           now: datetime | None = None) -> dict:
    """Steps 1-5 of the module docstring; returns what was written and the training job's ARN."""
    from training.launch import TrainingJobSpec, create_training_job
    from training.lst import atomic_write_text, write_lst
    from training.manifest import read_manifests
    from training.split import assign_groups, find_leaks, group_of, split_entries

    training = settings.training
    if training is None:
        raise EdgeAppError("training: section missing in the flywheel settings (role_arn, image_uri, ...)")
    now = now or datetime.now(UTC)
    name = event.get("job_name") or bundle_name(settings, now)
    local = [str(fetch(uri, work_dir / "cache", client=s3)) for uri in manifest_uris(event, settings, s3, sagemaker)]
    wanted = [settings.labeling.label_attribute] if settings.labeling else None
    report = read_manifests(local, label_attributes=wanted, drop_failed=True, skip_bad=True)
    failed = [e for e in report.entries if e.failure_reason]  # a label attribute *and* a failure-reason
    report.entries = [e for e in report.entries if not e.failure_reason]
    if not report.entries:
        raise EdgeAppError(f"{', '.join(local)}: no labeled images to train on")
    pattern = settings.line_regex
    groups = [group_of(e, pattern=pattern) for e in report.entries]
    assignment = assign_groups(groups, val=training.val_lines, test=training.test_lines,
                               val_fraction=training.val_fraction, test_fraction=training.test_fraction,
                               seed=training.seed)
    parts, record = split_entries(report.entries, assignment, pattern=pattern)
    leaks = find_leaks(record, check_bytes=False)
    if leaks:
        raise EdgeAppError(f"split: leakage between splits: {leaks[0]}")
    root = f"{training.bundle_prefix.strip('/')}/{name}"
    channels: dict[str, str] = {}
    for split, entries in parts.items():
        if not entries:
            continue
        lst = work_dir / name / split / f"{split}.lst"
        write_lst(entries, lst)
        s3.upload_file(str(lst), settings.bucket, f"{root}/{split}/{split}.lst")
        for entry in entries:
            src_bucket, src_key = split_s3_uri(entry.source_ref)
            s3.copy_object(CopySource={"Bucket": src_bucket, "Key": src_key}, Bucket=settings.bucket,
                           Key=f"{root}/{split}/{src_bucket}/{src_key}")
        channels[split] = f"s3://{settings.bucket}/{root}/{split}/"
    if "train" not in channels:
        raise EdgeAppError("split: no images in the training split")
    record["class_names"] = report.ordered_class_names()
    record["manifests"] = local
    summary = {"name": name, "created_at": now.isoformat(timespec="seconds"), "channels": channels,
               "groups": record["groups"], "counts": record["counts"], "class_names": record["class_names"],
               "manifest_summary": report.summary(), "failed_labels_dropped": len(failed)}
    for file_name, doc in (("split.json", record), ("bundle.json", summary)):
        path = work_dir / name / file_name
        atomic_write_text(path, json.dumps(doc, indent=1, ensure_ascii=False))
        s3.upload_file(str(path), settings.bucket, f"{root}/{file_name}")
    hyperparameters = {**training.hyperparameters, "classes": ",".join(record["class_names"]),
                       "model-version": name}
    spec = TrainingJobSpec(job_name=name, role_arn=training.role_arn, image_uri=training.image_uri,
                           train_s3=channels["train"], validation_s3=channels.get("val"),
                           output_s3=f"s3://{settings.bucket}/{training.output_prefix.strip('/')}/",
                           source_s3=training.source_s3, instance_type=training.instance_type,
                           max_runtime_s=training.max_runtime_s, hyperparameters=hyperparameters,
                           spot=training.spot, region=settings.region)
    summary["training_job_arn"] = create_training_job(spec, client=sagemaker)
    log.info("bundle %s: %s; training job %s", name, record["counts"], summary["training_job_arn"])
    return summary


def handler(event: dict, context: Any = None) -> dict:
    """AWS Lambda entry point (``training.lambda_bundle.handler``)."""
    import boto3

    logging.getLogger().setLevel(logging.INFO)
    event = event or {}
    settings = parse_settings(event["settings"], "event.settings") if "settings" in event else settings_from_env()
    s3 = boto3.client("s3", region_name=settings.region)
    sagemaker = boto3.client("sagemaker", region_name=settings.region)
    with tempfile.TemporaryDirectory(prefix="bundle-") as tmp:  # Lambda: /tmp, the only writable place
        return bundle(event, settings, s3=s3, sagemaker=sagemaker, work_dir=Path(tmp))

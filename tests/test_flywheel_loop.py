"""Done-when test of the data flywheel, offline: collect -> label -> bundle + start training -> train -> gate
-> register a new Panorama package version.

* three packaging lines are rendered by the simulator (small videos) and `edge-app collect` samples them every
  3 s of video time into the spool and uploads to S3 (moto), exactly as on a plant;
* "the labelers": for every uploaded JPEG the simulator's truth at that frame (the sidecar's stream time) is
  written as a Ground Truth bounding-box output manifest (sim.manifest: the exact output format) into the
  labeling job's output prefix;
* the bundling Lambda handler splits by line (val line-2, test line-3), writes the LST channels and creates the
  SageMaker training job (moto SageMaker);
* the training job is "run" locally: its channels are downloaded as SageMaker would, and training/train.py runs
  with the job's own hyperparameters (tiny: a few iterations at 128 px). The deployed model is the same run after
  its first epoch; the candidate continues from its checkpoint;
* the gate compares both on the held-out line, and on promotion registers the new package version of the
  Panorama project (Stubber on the vendored Panorama model + moto S3).
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

sys.path.insert(0, str(Path(__file__).resolve().parent))
from panorama_helpers import copy_project, edit_json, fake_container_tar  # noqa: E402
from test_panorama_deploy import stub_publish  # noqa: E402

pytestmark = pytest.mark.slow

REGION = "us-east-1"
BUCKET = "plant-flywheel"
ACCOUNT = "210987654321"
LINES = {"line-1": 1, "line-2": 2, "line-3": 3}  # line -> sim seed
TINY = {"input-size": 128, "batch-size": 4, "iters-per-epoch": 15, "warmup-iters": 5, "epochs": 3,
        "progress": "false", "seed": 3}
SETTINGS = {
    "region": REGION, "bucket": BUCKET, "upload_prefix": "collect",
    "labeling": {"job_name": "trays-stream", "role_arn": f"arn:aws:iam::{ACCOUNT}:role/GroundTruthRole",
                 "workteam_arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/plant"},
    "training": {"role_arn": f"arn:aws:iam::{ACCOUNT}:role/SageMakerRole",
                 "image_uri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/edge-app-training:1",
                 "source_s3": f"s3://{BUCKET}/code/sourcedir.tar.gz", "val_lines": ["line-2"],
                 "test_lines": ["line-3"], "hyperparameters": TINY},
    "gate": {"margin": 0.05},
}


def render_lines(root: Path) -> dict[str, Path]:
    from sim.generate import GenerateParams, generate

    out = {}
    for line, seed in LINES.items():
        folder = root / line
        generate(GenerateParams(out=folder, line=line, seed=seed, fps=4.0, width=320, height=180, duration=60.0,
                                sample_every=0))
        out[line] = folder
    return out


def collect_all(videos: dict[str, Path], state: Path, s3) -> dict:  # noqa: ANN001
    from edge_app.collect.run import CollectOptions, collect
    from edge_app.config import AppConfig

    config = AppConfig.model_validate({
        "model": {"path": "unused.onnx"}, "state_dir": str(state),
        "streams": [{"name": f"cam-{line[-1]}", "line": line, "uri": str(folder / "video.mp4")}
                    for line, folder in videos.items()]})
    return collect(config, CollectOptions(every_s=3.0, bucket=BUCKET, prefix="collect"), s3=s3,
                   stop=threading.Event())


def label_like_workers(videos: dict[str, Path], s3) -> str:  # noqa: ANN001
    """The GT output manifest for every uploaded frame, from the simulator's truth at the sidecar's time."""
    from sim.manifest import manifest_line

    truth = {line: [json.loads(li) for li in (folder / "boxes.jsonl").read_text().splitlines()]
             for line, folder in videos.items()}
    lines = []
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="collect/")
            for o in page.get("Contents", [])]
    for key in sorted(k for k in keys if k.endswith(".jpg")):
        side = json.loads(s3.get_object(Bucket=BUCKET, Key=key[:-4] + ".json")["Body"].read())
        frame = truth[side["line"]][round(side["stream_time_s"] * 4.0)]
        boxes = [tuple(t["box"]) for t in frame["trays"] if t["visible"] >= 0.5]
        lines.append(manifest_line(f"s3://{BUCKET}/{key}", side["camera"]["width"], side["camera"]["height"], boxes,
                                   side["line"], LINES[side["line"]], side["stream_time_s"]))
    key = "labels/trays-stream/manifests/output/output.manifest"
    s3.put_object(Bucket=BUCKET, Key=key, Body="".join(lines).encode())
    return f"s3://{BUCKET}/{key}"


def download_channel(s3, uri: str, dest: Path) -> Path:  # noqa: ANN001
    """What SageMaker does with an S3Prefix channel: everything under it, same relative layout."""
    prefix = uri.split(f"s3://{BUCKET}/", 1)[1]
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            target = dest / obj["Key"][len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(BUCKET, obj["Key"], str(target))
    return dest


def job_argv(hyperparameters: dict[str, str]) -> list[str]:
    """Script mode: every hyperparameter except sagemaker_* becomes ``--key value`` (values JSON-decoded)."""
    argv = []
    for key, value in hyperparameters.items():
        if not key.startswith("sagemaker_"):
            argv += [f"--{key}", str(json.loads(value))]
    return argv


def test_whole_flywheel_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from training.gate import PanoramaTarget, run_gate
    from training.lambda_bundle import handler
    from training.train import run

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("FLYWHEEL_SETTINGS", json.dumps(SETTINGS))
    videos = render_lines(tmp_path / "sim")
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)

        # 1. collect at the edge
        collected = collect_all(videos, tmp_path / "state", s3)
        saved = {name: stats["saved"] for name, stats in collected["streams"].items()}
        assert collected["pending"] == 0 and collected["uploaded_total"] == sum(saved.values())
        assert all(n >= 8 for n in saved.values()), saved  # 60 s every 3 s: 20 candidates, some duplicates

        # 2. labelers (the simulator's truth) -> output manifest; 3. the bundling Lambda
        manifest = label_like_workers(videos, s3)
        result = handler({"manifest": manifest, "job_name": "tray-detector-loop-1"}, None)
        assert result["groups"] == {"train": ["line-1"], "val": ["line-2"], "test": ["line-3"]}
        assert sum(c["images"] for c in result["counts"].values()) == sum(saved.values())
        assert result["counts"]["train"]["boxes"] > 20
        job = boto3.client("sagemaker", region_name=REGION).describe_training_job(
            TrainingJobName="tray-detector-loop-1")

        # 4. the training job, run here on its downloaded channels with its own hyperparameters
        channels = {c["ChannelName"]: download_channel(s3, c["DataSource"]["S3DataSource"]["S3Uri"],
                                                       tmp_path / "opt_ml_input" / c["ChannelName"])
                    for c in job["InputDataConfig"]}
        test_dir = download_channel(s3, result["channels"]["test"], tmp_path / "held_out")
        argv = job_argv(job["HyperParameters"])
        assert "--classes" in argv and argv[argv.index("--classes") + 1] == "tray"
        data = ["--train", str(channels["train"]), "--validation", str(channels["validation"])]
        deployed_dir, candidate_dir = tmp_path / "deployed", tmp_path / "candidate"
        run(argv + data + ["--model-dir", str(deployed_dir), "--epochs", "1"])
        shutil.copytree(deployed_dir / "checkpoints", candidate_dir / "checkpoints")
        metrics = run(argv + data + ["--model-dir", str(candidate_dir)])  # resumes after epoch 1
        assert metrics["epochs_run"] == 3 and [h["epoch"] for h in metrics["history"]] == [1, 2, 3]
        assert metrics["model_version"] == "tray-detector-loop-1"

    # 5. the gate on the held-out line, registering the new version on promotion
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="panorama-packages-test")
        root = copy_project(tmp_path / "project")
        edit_json(next(root.glob("packages/*tray_detector_model*/descriptor.json")),
                  lambda d: d["mlModelDescriptor"]["inputs"][0].update(shape=[1, 3, 128, 128]))
        edit_json(root / "graphs/tray-counter/graph.json", lambda d: next(
            p for p in d["nodeGraph"]["nodes"] if p["name"] == "model_input_size").update(value=128))
        from edge_app.panorama.aws import panorama_client
        from edge_app.panorama.build import build

        client = panorama_client(REGION)
        stubber = Stubber(client)
        container = fake_container_tar(tmp_path / "container.tar")
        prefix = candidate_dir / "tray_detector"
        expected = build(root, account=ACCOUNT, container_tar=container, model_prefix=prefix,
                         build_dir=tmp_path / "dry-build")
        target = PanoramaTarget(root, client, s3, account=ACCOUNT, container_tar=container,
                                build_dir=tmp_path / "build")
        margin = SETTINGS["gate"]["margin"]
        with stubber:
            stub_publish(stubber, expected, exists=False)
            decision = run_gate(candidate_dir / "tray_detector.onnx", deployed_dir / "tray_detector.onnx",
                                [test_dir], margin=margin, out_dir=tmp_path / "gate", target=target)
            print(f"gate: candidate mAP {decision.candidate_map}, deployed {decision.deployed_map}, "
                  f"promote {decision.promote}")
            assert decision.promote == (decision.candidate_map >= decision.deployed_map - margin)
            # seeded and deterministic here: the 3-epoch candidate (0.037) beats the 1-epoch deployed model (0.024)
            assert decision.promote, decision.reason
            stubber.assert_no_pending_responses()
        assert decision.registered["version"] == expected.version
        assert decision.images == result["counts"]["test"]["images"]
        report = json.loads((tmp_path / "gate" / "gate.json").read_text())
        assert report["promote"] and report["registered"]["version"] == expected.version
        stored = s3.list_objects_v2(Bucket="panorama-packages-test")["Contents"]
        assert any(o["Key"].endswith(".tar.gz") for o in stored)  # the model asset went up

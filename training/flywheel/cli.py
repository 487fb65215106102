"""`edge-app label setup | bundle`, `edge-app gate`, `edge-app dataset stats` (the data flywheel's commands).

``edge-app collect`` lives in `edge_app.collect.cli`; ``edge-app train remote`` (training/cli.py) starts a
training job from channels that already exist, ``label bundle`` builds them from a labeling job and starts it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

label_app = typer.Typer(help="Ground Truth streaming labeling: create the job's resources, bundle its output.",
                        no_args_is_help=True)

SettingsOption = Annotated[Path, typer.Option("--settings", "-s", help="Flywheel settings YAML "
                                                                        "(see configs/flywheel.yaml)")]


@label_app.command("setup")
def setup_cmd(settings: SettingsOption,
              dry_run: Annotated[bool, typer.Option("--dry-run", help="Create the S3/SNS resources, print the "
                                                                      "CreateLabelingJob request, do not send "
                                                                      "it")] = False) -> None:
    """SNS topics, S3 event notification, CORS, label config, task template, streaming labeling job."""
    import boto3

    from training.flywheel.labeling import setup
    from training.flywheel.settings import load_settings

    cfg = load_settings(settings)
    session = boto3.Session(region_name=cfg.region)
    result = setup(cfg, s3=session.client("s3"), sns=session.client("sns"),
                   sagemaker=None if dry_run else session.client("sagemaker"))
    if dry_run:
        typer.echo(json.dumps(result.request, indent=1))
    typer.echo(json.dumps(result.summary()))


@label_app.command("bundle")
def bundle_cmd(settings: SettingsOption,
               manifest: Annotated[str | None, typer.Option(help="s3:// output manifest or prefix (default: the "
                                                                 "labeling job's)")] = None,
               labeling_job_name: Annotated[str | None, typer.Option(help="Labeling job (default: settings)")] = None,
               job_name: Annotated[str | None, typer.Option(help="Training job / bundle name (default: "
                                                                "<job_prefix>-<UTC time>)")] = None) -> None:
    """Run the bundling Lambda's handler from here: manifest -> line split -> LST channels -> training job."""
    from training.flywheel.settings import load_settings
    from training.lambda_bundle import handler

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    event = {"settings": load_settings(settings).model_dump(mode="json")}
    for key, value in (("manifest", manifest), ("labeling_job_name", labeling_job_name), ("job_name", job_name)):
        if value:
            event[key] = value
    typer.echo(json.dumps(handler(event, None)))


def gate_cmd(
    candidate: Annotated[Path, typer.Option(help="Newly trained ONNX model")],
    data: Annotated[list[Path], typer.Option("--data", "-d", help="Held-out LST / manifest / folder (test lines)")],
    deployed: Annotated[Path | None, typer.Option(help="ONNX model running today (none: first model)")] = None,
    margin: Annotated[float | None, typer.Option(help="Allowed mAP drop (default: settings gate.margin or "
                                                      "0.01)")] = None,
    settings: Annotated[Path | None, typer.Option("--settings", "-s", help="Flywheel settings YAML")] = None,
    out: Annotated[Path, typer.Option(help="Folder for gate.json and gate.md")] = Path("out/gate"),
    panorama_root: Annotated[Path | None, typer.Option(help="Register the promoted model's Panorama package "
                                                            "version from this project root")] = None,
    model_prefix: Annotated[Path | None, typer.Option(help="MXNet export prefix of the candidate (default: "
                                                           "next to --candidate)")] = None,
    account: Annotated[str | None, typer.Option(help="AWS account id for the Panorama release")] = None,
    container_tar: Annotated[Path | None, typer.Option(help="`docker export` tar of the code image")] = None,
    region: Annotated[str | None, typer.Option(help="AWS region")] = None,
) -> None:
    """Promote the candidate only if its held-out mAP is not worse than the deployed one's by more than a margin."""
    from training.gate import PanoramaTarget, run_gate

    if margin is None:
        from training.flywheel.settings import load_settings

        margin = load_settings(settings).gate.margin if settings else 0.01
    target = None
    if panorama_root is not None:
        from edge_app.panorama.aws import panorama_client, s3_client

        target = PanoramaTarget(panorama_root, panorama_client(region), s3_client(region), account=account,
                                container_tar=container_tar)
    decision = run_gate(candidate, deployed, data, margin=margin, out_dir=out, model_prefix=model_prefix,
                        target=target)
    typer.echo(("PROMOTED: " if decision.promote else "REFUSED: ") + decision.reason)
    typer.echo(json.dumps(decision.to_dict()))


def stats_cmd(
    manifests: Annotated[list[str], typer.Argument(help="Ground Truth output manifests (files, folders, s3://)")],
    png: Annotated[Path | None, typer.Option(help="Write the charts here")] = Path("out/label-stats.png"),
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the numbers as JSON here")] = None,
    line_regex: Annotated[str | None, typer.Option(help=r"Regex on the image path; group 1 is the line "
                                                        r"(default '(line-[A-Za-z0-9_.]+)')")] = None,
    line_key: Annotated[str | None, typer.Option(help="Metadata key holding the line")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip broken lines and report them")] = False,
) -> None:
    """Label statistics: boxes per class, boxes per image, image/box sizes, per line and per day."""
    from training.label_stats import compute, plot, print_tables, write_json
    from training.manifest import read_manifests

    report = read_manifests(manifests, skip_bad=skip_bad)
    stats = compute(report, line_regex=line_regex, line_key=line_key)
    print_tables(stats)
    if png:
        typer.echo(f"charts: {plot(stats, png)}")
    if json_out:
        write_json(stats, json_out)


def register(app: typer.Typer) -> None:
    """Attach `label`, `gate` and `dataset stats` to the main app (after training.cli.register)."""
    from training.cli import dataset_app

    app.add_typer(label_app, name="label")
    app.command("gate")(gate_cmd)
    dataset_app.command("stats")(stats_cmd)

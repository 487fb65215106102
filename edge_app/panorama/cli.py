"""`edge-app panorama ...` commands: validate, build, deploy, status, rollback, run-local.

AWS Panorama reached end of support on 31 May 2026; these commands keep existing appliances serviceable.
``edge-app run`` on any Jetson or PC is the first-class way to run the app.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Build, deploy, inspect and roll back the Panorama application; run its node locally.",
                  no_args_is_help=True)

RootOption = Annotated[Path, typer.Option("--root", help="Project root (holds panorama.json)")]
RegionOption = Annotated[str | None, typer.Option("--region", help="AWS region (default: the AWS config's)")]


def _deployer(root: Path, region: str | None):  # noqa: ANN202
    from edge_app.panorama.aws import panorama_client, s3_client
    from edge_app.panorama.deploy import Deployer, DeployState
    from edge_app.panorama.project import load_project

    project = load_project(root)
    settings = project.manifest["deploy"]
    return project, Deployer(panorama_client(region), s3_client(region), DeployState(root / settings["state_file"]),
                             poll_interval_s=float(settings.get("poll_interval_s", 15)),
                             timeout_s=float(settings.get("timeout_s", 1800)))


@app.command()
def validate(root: RootOption = Path(".")) -> None:
    """Check panorama.json, the graph, packages, descriptors and overrides (schemas + cross-references)."""
    from edge_app.panorama.build import validate as run_validate

    project = run_validate(root)
    print(f"ok: {project.name} {project.app['version']}: graph {project.app['graph']}, packages "
          f"{', '.join(project.packages)}")


@app.command()
def build(
    root: RootOption = Path("."),
    version: Annotated[str | None, typer.Option(help="Release version <major>.<minor> (default: next minor)")] = None,
    account: Annotated[str | None, typer.Option(help="AWS account id replacing the placeholder "
                                                     "(default: $PANORAMA_ACCOUNT_ID or the placeholder)")] = None,
    container_tar: Annotated[Path | None, typer.Option(help="`docker export` tar of the code image "
                                                            "(default: build it with docker)")] = None,
    model_prefix: Annotated[Path | None, typer.Option(help="MXNet export prefix (<prefix>-symbol.json, "
                                                           "<prefix>-0000.params); default: panorama.json's")] = None,
    base_image: Annotated[str | None, typer.Option(help="Dockerfile BASE_IMAGE build argument")] = None,
    build_dir: Annotated[Path | None, typer.Option(help="Default: panorama.json build.dir")] = None,
) -> None:
    """Validate and write an immutable release folder with sha256-named assets."""
    from edge_app.panorama.build import build as run_build

    release = run_build(root, version=version, account=account, container_tar=container_tar,
                        model_prefix=model_prefix, base_image=base_image, build_dir=build_dir)
    print(f"built {release.info['application']} {release.version} for account {release.info['account']} "
          f"in {release.path}")
    print(json.dumps({"version": release.version, "path": str(release.path),
                      "packages": {p["name"]: p["patch_version"] for p in release.info["packages"]}}))


@app.command()
def deploy(
    device: Annotated[str, typer.Option(help="Panorama appliance device id")],
    root: RootOption = Path("."),
    version: Annotated[str | None, typer.Option(help="Built version to deploy (default: the newest)")] = None,
    overrides: Annotated[Path | None, typer.Option(help="nodeGraphOverrides JSON (cameras, parameters)")] = None,
    runtime_role_arn: Annotated[str | None, typer.Option(help="IAM role the application runs with")] = None,
    rollback: Annotated[bool, typer.Option(help="Roll back to the last good version if the deployment "
                                                "fails")] = True,
    region: RegionOption = None,
) -> None:
    """Upload and register the release's packages, deploy it, wait for the result (rollback on failure)."""
    from edge_app.errors import EdgeAppError
    from edge_app.panorama.build import load_release

    project, deployer = _deployer(root, region)
    release = load_release(root / project.manifest["build"]["dir"], version)
    text = overrides.read_text(encoding="utf-8") if overrides else None
    outcome = deployer.deploy(release, device, overrides=text, role_arn=runtime_role_arn,
                              rollback_on_failure=rollback)
    print(json.dumps({"version": outcome.version, "instance_id": outcome.instance_id, "status": outcome.status,
                      "rolled_back_to": ({k: outcome.rolled_back_to[k] for k in ("version", "instance_id", "status")}
                                         if outcome.rolled_back_to else None)}))
    if not outcome.ok:
        back = outcome.rolled_back_to
        raise EdgeAppError(f"deployment of {outcome.version} to {device} ended {outcome.status}"
                           + (f"; rolled back to {back['version']} ({back['status']})" if back else ""))


@app.command()
def status(
    device: Annotated[str | None, typer.Option(help="Only this device")] = None,
    root: RootOption = Path("."),
    region: RegionOption = None,
) -> None:
    """Application instances on the account/device, the built versions and the local deploy history."""
    from edge_app.panorama.build import built_versions

    project, deployer = _deployer(root, region)
    report = deployer.status(device)
    report["built_versions"] = built_versions(root / project.manifest["build"]["dir"])
    for item in report["instances"]:
        print(f"{item['Name']:<32} {item['ApplicationInstanceId']:<28} {item['Status']:<24} {item['HealthStatus']}")
    print(json.dumps(report))


@app.command("rollback")
def rollback_command(
    device: Annotated[str, typer.Option(help="Panorama appliance device id")],
    root: RootOption = Path("."),
    region: RegionOption = None,
) -> None:
    """Re-deploy the version that ran before the current one on ``device``."""
    from edge_app.errors import EdgeAppError

    _, deployer = _deployer(root, region)
    outcome = deployer.rollback(device)
    print(json.dumps({"version": outcome.version, "instance_id": outcome.instance_id, "status": outcome.status}))
    if not outcome.ok:
        raise EdgeAppError(f"rollback of {device} to {outcome.version} ended {outcome.status}")


@app.command("run-local")
def run_local(
    graph: Annotated[Path | None, typer.Option(help="graph.json (default: panorama.json's)")] = None,
    camera: Annotated[list[str] | None, typer.Option(help="NAME=VIDEO, repeatable (default: the sim demo "
                                                          "video as camera_node)")] = None,
    param: Annotated[list[str] | None, typer.Option(help="NAME=VALUE parameter override, repeatable")] = None,
    model: Annotated[Path | None, typer.Option(help="ONNX detector standing in for the compiled model "
                                                    "(default: models/tray_detector.onnx)")] = None,
    max_frames: Annotated[int | None, typer.Option(help="Stop after this many frames per camera")] = None,
    out: Annotated[Path, typer.Option(help="HDMI output videos, logs and storage go here")] = Path(
        "out/panorama-local"),
    root: RootOption = Path("."),
) -> None:
    """Run the code node's entry module on this machine, wired from graph.json."""
    from edge_app.errors import EdgeAppError
    from edge_app.panorama.local_run import run_local as run

    if max_frames is not None and max_frames < 1:
        raise EdgeAppError(f"--max-frames: expected a positive number of frames (got {max_frames})")
    result = run(root, graph, cameras=camera or [], params=param or [], model=model, max_frames=max_frames,
                 out_dir=out, work_dir=out)
    if "untrained" in result.model_version.lower():
        print(f"THIS RUN USES AN UNTRAINED MODEL ({result.model_version}): detections are random and the counts "
              "are meaningless.")
    for name, stats in result.streams.items():
        hdmi = result.hdmi.get(name)
        print(f"{name}: {stats['frames']} frames, bins {stats['bins']}, total {stats['global']} trays; HDMI "
              f"{hdmi.frames if hdmi else 0} frames, {hdmi.rects if hdmi else 0} boxes")
    print(json.dumps({"streams": result.streams, "model_version": result.model_version,
                      "hdmi": {k: {"frames": v.frames, "rects": v.rects, "labels": v.labels}
                               for k, v in result.hdmi.items()}}))

"""`edge-app` command line.

Each concern owns its sub-command module; this file only wires them together and turns
`EdgeAppError` into one clear line (``error: ...``) with exit code 2 instead of a traceback.
Heavy imports (mxnet, onnxruntime, cv2) happen inside commands so ``edge-app --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from edge_app.errors import EdgeAppError

app = typer.Typer(
    name="edge-app",
    help="Edge computer vision for packaging lines: count trays, inspect equipment, publish over MQTT.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command()
def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML config file")],
    record_detections: Annotated[
        Path | None, typer.Option(help="Write every frame's detections as replay JSONL")
    ] = None,
    annotate: Annotated[
        Path | None, typer.Option(help="Write annotated video per stream into this folder")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = None,
    max_frames: Annotated[int | None, typer.Option(help="Stop each stream after this many frames")] = None,
    dashboard: Annotated[int | None, typer.Option(
        "--dashboard", metavar="PORT", help="Serve the local web dashboard on this port (0: any free port)")] = None,
    dashboard_host: Annotated[str | None, typer.Option(
        help="Interface for the dashboard (default 127.0.0.1; any other needs a token)")] = None,
    dashboard_token: Annotated[str | None, typer.Option(
        envvar="EDGE_APP_DASHBOARD_TOKEN", help="Token the dashboard requires (Bearer header or /?token=...)")] = None,
) -> None:
    """Run all configured streams: detect, count, publish."""
    from edge_app.app import run_from_cli

    run_from_cli(config, record_detections=record_detections, annotate=annotate, log_level=log_level,
                 max_frames=max_frames, dashboard_port=dashboard, dashboard_host=dashboard_host,
                 dashboard_token=dashboard_token)


@app.command()
def count(
    detections: Annotated[Path, typer.Option("--detections", "-d", help="Replay JSONL file ('-' for stdin)")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Use this config's counters and ROIs")] = None,
) -> None:
    """Count trays from recorded detections; prints one JSON summary as the last stdout line."""
    from edge_app.replay import count_from_cli

    count_from_cli(detections, config)


def _register_subcommands() -> None:
    from edge_app.anomaly.cli import app as anomaly_app
    from edge_app.bench.cli import app as bench_app
    from edge_app.collect.cli import collect_cmd
    from edge_app.panorama.cli import app as panorama_app
    from edge_app.sitewise.cli import app as sitewise_app
    from sim.cli import app as sim_app
    from training.cli import register as register_training
    from training.flywheel.cli import register as register_flywheel

    app.add_typer(sim_app, name="sim")
    app.add_typer(bench_app, name="bench")
    app.add_typer(sitewise_app, name="sitewise")
    app.add_typer(anomaly_app, name="anomaly")
    app.add_typer(panorama_app, name="panorama")
    register_training(app)  # dataset ..., train, eval
    register_flywheel(app)  # label setup|bundle, gate, dataset stats
    app.command("collect")(collect_cmd)


_register_subcommands()


def main() -> None:
    try:
        app()
    except EdgeAppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()

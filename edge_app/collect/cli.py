"""``edge-app collect``: frames for labeling (see `edge_app.collect`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer


def collect_cmd(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML config (streams, ROIs, state_dir)")],
    stream: Annotated[list[str] | None, typer.Option(help="Only this stream (repeatable; default: all)")] = None,
    every: Annotated[float, typer.Option(help="Seconds of stream time between kept frames")] = 60.0,
    bucket: Annotated[str | None, typer.Option(help="S3 bucket to upload to (default: spool only)")] = None,
    prefix: Annotated[str, typer.Option(help="S3 key prefix (the labeling job watches it)")] = "collect",
    spool: Annotated[Path | None, typer.Option(help="Spool folder (default: <state_dir>/collect)")] = None,
    dup_threshold: Annotated[int, typer.Option(help="Skip a frame whose pHash is this many bits or fewer from a "
                                                    "recent kept one")] = 4,
    no_mask: Annotated[bool, typer.Option("--no-mask", help="Do not black out what is outside the ROI")] = False,
    max_frames: Annotated[int | None, typer.Option(help="Stop each stream after this many frames")] = None,
) -> None:
    """Save a frame every N seconds per stream (near-duplicates skipped, ROI masked) and upload it to S3."""
    from edge_app.collect.run import CollectOptions, collect
    from edge_app.config import load_config

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    options = CollectOptions(every_s=every, prefix=prefix, bucket=bucket, spool_dir=spool,
                             dup_threshold=dup_threshold, max_frames=max_frames, mask=not no_mask)
    result = collect(load_config(config), options, stream_names=stream or None)
    for name, stats in result["streams"].items():
        typer.echo(f"{name}: {stats}")
    typer.echo(json.dumps(result))

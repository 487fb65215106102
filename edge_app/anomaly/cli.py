"""`edge-app anomaly ...` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Train, evaluate and run visual anomaly inspection.", no_args_is_help=True)


@app.command()
def train(
    normal: Annotated[Path, typer.Option("--normal", help="Folder of >= 20 normal images (or a dataset root)")],
    out: Annotated[Path, typer.Option("--out", help="Model directory to write")],
    anomalous: Annotated[Path | None, typer.Option(help="Optional folder of anomalous images (F1-optimal "
                                                        "threshold)")] = None,
    roi: Annotated[str | None, typer.Option(help="x,y,w,h region of interest in image pixels")] = None,
    size: Annotated[int, typer.Option(help="ROI side after resizing (multiple of 16)")] = 256,
    registration: Annotated[str, typer.Option(help="euclidean, affine or none")] = "euclidean",
) -> None:
    """Learn normal appearance from images; writes the ONNX model, golden reference, calibration and card."""
    from edge_app.anomaly.data import parse_roi
    from edge_app.anomaly.train import TrainOptions, train_model
    from edge_app.errors import EdgeAppError

    if registration not in ("euclidean", "affine", "none"):
        raise EdgeAppError(f"--registration: expected euclidean, affine or none, got {registration!r}")
    if size < 64 or size % 16:
        raise EdgeAppError(f"--size: expected a multiple of 16 >= 64, got {size}")
    result = train_model(normal, out, anomalous, parse_roi(roi),
                         TrainOptions(size=size, motion=registration),  # type: ignore[arg-type]
                         log=lambda msg: typer.echo(msg, err=True))
    typer.echo(json.dumps({"model_dir": str(out), "threshold": result.calibration.threshold,
                           "threshold_method": result.calibration.method, "n_normal": result.n_normal,
                           "n_anomalous": result.n_anomalous, "registration": result.motion,
                           "train_seconds": round(result.seconds, 2)}))


@app.command("eval")
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="Model directory from `anomaly train`")],
    data: Annotated[Path, typer.Option("--data", help="Dataset root or its test/ folder")],
    out: Annotated[Path | None, typer.Option(help="Report folder (default MODEL_DIR/eval)")] = None,
) -> None:
    """Image/pixel AUROC and precision/recall/F1 at the threshold; writes report.json, roc.png, overlays/."""
    from edge_app.anomaly.evaluate import evaluate_model

    report = evaluate_model(model_dir, data, out)
    typer.echo(json.dumps(report.to_dict()))


@app.command()
def predict(
    model_dir: Annotated[Path, typer.Argument(help="Model directory from `anomaly train`")],
    images: Annotated[list[Path], typer.Argument(help="Images to inspect")],
    out: Annotated[Path | None, typer.Option(help="Folder for masks and overlays (default MODEL_DIR/predict)")] = None,
) -> None:
    """One JSON line per image: is_anomalous, score, confidence, area %, mask and overlay paths."""
    from edge_app.anomaly.data import read_image
    from edge_app.anomaly.runtime import AnomalyModel, overlay, write_png

    model = AnomalyModel(model_dir)
    out = out or model_dir / "predict"
    out.mkdir(parents=True, exist_ok=True)
    for path in images:
        image = read_image(path)
        pred = model.predict(image, str(path))
        mask_path = out / f"{path.stem}_mask.png"
        overlay_path = out / f"{path.stem}_overlay.png"
        write_png(mask_path, model.mask_in_image(pred, image.shape))
        full_map = model.map_in_image(pred.anomaly_map, image.shape)
        write_png(overlay_path, overlay(image, full_map))
        typer.echo(json.dumps({"image": str(path), **pred.to_json(), "mask_path": str(mask_path),
                               "overlay_path": str(overlay_path)}))


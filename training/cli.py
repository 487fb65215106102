"""`edge-app dataset ...`, `edge-app train`, `edge-app eval`.

Heavy imports (mxnet, gluoncv, onnxruntime, cv2) happen inside the commands so ``edge-app --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from edge_app.errors import EdgeAppError

dataset_app = typer.Typer(help="Read Ground Truth manifests, write LST files, split by line.",
                          no_args_is_help=True)
remote_app = typer.Typer(help="Create a SageMaker training job running training/train.py in script mode.",
                         add_completion=False)

ManifestArgs = Annotated[list[str], typer.Argument(help="Ground Truth output manifests (files, folders or s3://)")]
LabelAttr = Annotated[list[str] | None, typer.Option("--label-attribute", "-a",
                                                     help="Label attribute(s) to use (default: auto-detect)")]
SkipBad = Annotated[bool, typer.Option("--skip-bad", help="Skip broken lines and report them instead of stopping")]
CacheDir = Annotated[Path | None, typer.Option(help="Local cache for s3:// objects")]


def _read(manifests: list[str], label_attribute: list[str] | None, skip_bad: bool, drop_failed: bool = False,
          cache_dir: Path | None = None):
    from training.manifest import read_manifests

    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    return read_manifests(manifests, label_attributes=label_attribute or None, skip_bad=skip_bad,
                          drop_failed=drop_failed, cache_dir=cache_dir)


def _print_report(report) -> None:
    summary = report.summary()
    for line in report.bad_lines:
        typer.echo(f"skipped: {line}", err=True)
    typer.echo(json.dumps(summary))


@dataset_app.command("inspect")
def inspect_cmd(manifests: ManifestArgs, label_attribute: LabelAttr = None, skip_bad: SkipBad = False,
                cache_dir: CacheDir = None) -> None:
    """Read manifests and print counts (images, boxes, negatives, failures, dropped boxes, classes) as JSON."""
    _print_report(_read(manifests, label_attribute, skip_bad, cache_dir=cache_dir))


@dataset_app.command("lst")
def lst_cmd(manifests: ManifestArgs,
            out: Annotated[Path, typer.Option("--out", "-o", help="LST file to write")],
            label_attribute: LabelAttr = None, skip_bad: SkipBad = False,
            drop_failed: Annotated[bool, typer.Option(help="Leave out failure-reason records")] = False,
            cache_dir: CacheDir = None) -> None:
    """Write an MXNet/GluonCV detection LST file (offline: sizes come from image_size)."""
    from training.lst import write_lst

    report = _read(manifests, label_attribute, skip_bad, drop_failed, cache_dir)
    n = write_lst(report.entries, out)
    _print_report(report)
    typer.echo(f"wrote {out}: {n} images", err=True)


@dataset_app.command("split")
def split_cmd(manifests: ManifestArgs,
              out: Annotated[Path, typer.Option("--out", "-o", help="Folder for train/val/test .lst + split.json")],
              group_regex: Annotated[str | None, typer.Option(help=r"Regex on the image path; group 1 is the line, "
                                                                   r"e.g. '(line-\d+)'")] = None,
              group_key: Annotated[str | None, typer.Option(help="Metadata key holding the line")] = None,
              val: Annotated[list[str] | None, typer.Option(help="Group(s) for validation")] = None,
              test: Annotated[list[str] | None, typer.Option(help="Group(s) for test")] = None,
              val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0,
              label_attribute: LabelAttr = None, skip_bad: SkipBad = False) -> None:
    """Split by packaging line into train/val/test LST files, write split.json, refuse any leakage."""
    from training.lst import write_lst
    from training.split import assign_groups, find_leaks, group_of, split_entries, write_split

    if not group_regex and not group_key:
        raise EdgeAppError("split: give --group-regex (e.g. '(line-\\d+)') or --group-key")
    report = _read(manifests, label_attribute, skip_bad)
    groups = [group_of(e, key=group_key, pattern=group_regex) for e in report.entries]
    assignment = assign_groups(groups, val=val or (), test=test or (), val_fraction=val_fraction,
                               test_fraction=test_fraction, seed=seed)
    parts, record = split_entries(report.entries, assignment, key=group_key, pattern=group_regex)
    leaks = find_leaks(record)
    if leaks:
        raise EdgeAppError(f"split: leakage between splits: {leaks[0]} (+{len(leaks) - 1} more)")
    out.mkdir(parents=True, exist_ok=True)
    for name, entries in parts.items():
        if entries:
            write_lst(entries, out / f"{name}.lst")
    record["class_names"] = report.ordered_class_names()
    write_split(record, out / "split.json")
    typer.echo(json.dumps({"groups": record["groups"], "counts": record["counts"]}))


@dataset_app.command("check-split")
def check_split_cmd(split_json: Annotated[Path, typer.Argument(help="split.json written by `dataset split`")]) -> None:
    """Check a written split for leakage (same line, path or image bytes in two splits); exit 2 if any."""
    from training.split import find_leaks, read_split

    leaks = find_leaks(read_split(split_json))
    if leaks:
        for leak in leaks:
            typer.echo(leak, err=True)
        raise EdgeAppError(f"{split_json}: {len(leaks)} leak(s) between splits")
    typer.echo("no leakage")


@dataset_app.command("augment")
def augment_cmd(manifests: ManifestArgs,
                out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the augmented copies")],
                copies: Annotated[int, typer.Option(help="Augmented copies per image")] = 1,
                seed: int = 0, label_attribute: LabelAttr = None) -> None:
    """Write offline augmented copies (noise, contrast/brightness, channel shuffle, flip, crop/expand) + manifest."""
    from training.offline_augment import write_augmented_copies

    report = _read(manifests, label_attribute, False)
    n = write_augmented_copies(report, out, copies=copies, seed=seed)
    typer.echo(f"wrote {n} augmented images and {out / 'output.manifest'}")


def train_cmd(ctx: typer.Context) -> None:
    """Train a detector: `edge-app train [train.py options]`, or `edge-app train remote ...` for SageMaker.

    All options are training/train.py's (the SageMaker script-mode entry point); `edge-app train --help`
    lists them.
    """
    args = list(ctx.args)
    if args and args[0] == "remote":
        typer.main.get_command(remote_app)(args[1:], prog_name="edge-app train remote")
        return
    from training.train import build_parser, run

    if "--help" in args or "-h" in args:
        build_parser().print_help()
        typer.echo("\n`edge-app train remote --help`: launch the same script as a SageMaker training job.")
        return
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    metrics = run(args)
    typer.echo(json.dumps({k: metrics[k] for k in ("best_epoch", "val_map_mxnet", "train_seconds")}))


@remote_app.command()
def remote_cmd(
    job_name: Annotated[str, typer.Option(help="SageMaker training job name")],
    role_arn: Annotated[str, typer.Option(help="IAM role SageMaker assumes")],
    image_uri: Annotated[str, typer.Option(help="Training container (MXNet + GluonCV) in ECR")],
    train_s3: Annotated[str, typer.Option(help="s3:// prefix of the train channel (LST + images)")],
    output_s3: Annotated[str, typer.Option(help="s3:// prefix for model artifacts")],
    validation_s3: Annotated[str | None, typer.Option(help="s3:// prefix of the validation channel")] = None,
    source_s3: Annotated[str | None,
                         typer.Option(help="s3:// tar.gz of training/ (sagemaker_submit_directory)")] = None,
    instance_type: str = "ml.c5.2xlarge",
    max_runtime_s: int = 3 * 3600,
    hyperparameter: Annotated[list[str] | None, typer.Option("--hp", help="key=value, repeatable")] = None,
    spot: bool = False,
) -> None:
    """Create a SageMaker training job running training/train.py in script mode."""
    from training.launch import TrainingJobSpec, create_training_job

    hps = {}
    for item in hyperparameter or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise EdgeAppError(f"--hp: expected key=value, got {item!r}")
        hps[key] = value
    spec = TrainingJobSpec(job_name=job_name, role_arn=role_arn, image_uri=image_uri, train_s3=train_s3,
                           validation_s3=validation_s3, output_s3=output_s3, source_s3=source_s3,
                           instance_type=instance_type, max_runtime_s=max_runtime_s, hyperparameters=hps, spot=spot)
    arn = create_training_job(spec)
    typer.echo(arn)


def eval_cmd(
    model: Annotated[Path, typer.Option("--model", "-m", help="ONNX model (FP32)")],
    data: Annotated[list[Path], typer.Option("--data", "-d", help="LST / manifest / folder of held-out images")],
    fp16: Annotated[Path | None, typer.Option(help="FP16 ONNX to compare on the same images")] = None,
    threshold: Annotated[float, typer.Option(help="Operating score threshold for per-image errors")] = 0.5,
    out: Annotated[Path | None, typer.Option(help="Write the results as JSON here")] = None,
    pr_png: Annotated[Path | None, typer.Option(help="Write a precision-recall plot here")] = None,
    worst: Annotated[int, typer.Option(help="How many worst images to list")] = 10,
    resize: Annotated[str, typer.Option(help="Frame resize of the edge app (config model.resize): gluoncv or linear")]
    = "gluoncv",
) -> None:
    """VOC07 mAP@0.5 of an ONNX model through the edge app's ONNX Runtime backend; FP32 vs FP16; worst frames."""
    from edge_app.detectors.preprocess import checked_resize_mode
    from training.data import samples_from_path
    from training.evaluate import evaluate_onnx, max_box_difference, plot_pr, write_json

    checked_resize_mode(resize, "--resize")
    samples = [s for path in data for s in samples_from_path(path)]
    result = evaluate_onnx(model, samples, operating_threshold=threshold, progress=True, resize=resize)
    report = {"fp32": result.to_dict(worst)}
    typer.echo(f"{model} ({resize} resize): mAP@0.5 {result.map:.4f} (VOC07 11-point; VOC2010+ area "
               f"{result.map_area:.4f}; {100 * result.max_recall:.1f} % of boxes found) on {len(samples)} images "
               f"({result.gt_boxes} boxes); "
               f"at score >= {threshold}: {result.totals()}")
    curves = {"fp32": result}
    if fp16 is not None:
        r16 = evaluate_onnx(fp16, samples, operating_threshold=threshold, progress=True, resize=resize)
        diff = max_box_difference(result.detections, r16.detections, threshold)
        report["fp16"] = r16.to_dict(worst)
        report["fp32_vs_fp16"] = {"fp32_map": round(result.map, 4), "fp16_map": round(r16.map, 4), **diff}
        typer.echo(f"{fp16}: mAP@0.5 {r16.map:.4f}; FP32 vs FP16: {report['fp32_vs_fp16']}")
        curves["fp16"] = r16
    typer.echo(f"worst images (FN+FP at score >= {threshold}):")
    for e in result.worst(worst):
        typer.echo(f"  {e.path}: gt {e.gt}, fn {e.fn}, fp {e.fp}")
    if out:
        write_json(out, report)
    if pr_png:
        plot_pr(curves, pr_png)


def register(app: typer.Typer) -> None:
    """Attach the training commands to the main `edge-app` app."""
    app.add_typer(dataset_app, name="dataset")
    app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                           "help_option_names": []})(train_cmd)
    app.command("eval")(eval_cmd)

"""Evaluate a trained model on its validation and unseen test lines, then ship it with a model card.

``python -m training.model_card --build DIR --split DIR --out models/`` (what ``make model`` runs last):

1. evaluates ``DIR/tray_detector.onnx`` through the edge app's ONNX Runtime backend on ``val.lst`` and
   ``test.lst`` (VOC07 mAP@0.5), and the FP16 file on the test line (FP32 vs FP16 on the same images);
2. writes ``metrics.json`` (training metrics + these), a precision-recall plot and a markdown model card
   (classes, input size, mAP per split, dataset hash, exact training command);
3. copies the two ONNX files (and the MXNet symbol + params the Panorama model package is built from) next to
   them, atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from training.data import samples_from_path
from training.evaluate import evaluate_onnx, max_box_difference, plot_pr, write_json


def _copy_atomic(src: Path, dst: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.")
    os.close(fd)
    shutil.copyfile(src, tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, dst)


def card_markdown(m: dict) -> str:
    ev = m["evaluation"]
    rows = []
    for split in ("val", "test"):
        if split in ev:
            e = ev[split]
            rows.append(f"| {split} | {', '.join(e['groups'])} | {e['images']} | {e['gt_boxes']} | {e['map']:.4f} | "
                        f"{e.get('map_area', float('nan')):.4f} | {100 * e.get('max_recall', float('nan')):.1f} % | "
                        f"{e['tp']} / {e['fp']} / {e['fn']} |")
    fp = ev.get("fp32_vs_fp16", {})
    linear = ev.get("test_linear_resize")
    linear_line = (f"With the app's default bilinear frame resize (`model.resize: linear`) instead of GluonCV's area "
                   f"filter, the test mAP is {linear['map']:.4f}.\n" if linear else "")
    tpfp = f"TP / FP / FN at score >= {ev.get('threshold', 0.5)}"
    size_mb = {k: round(v / 1e6, 2) for k, v in m.get("file_sizes", {}).items()}
    return f"""# Model card: {m['model_name']}

- **Model version:** `{m.get('model_version', '?')}`
- **Architecture:** {m['architecture']} (GluonCV, trained from scratch, no pretrained weights)
- **Classes:** {', '.join(m['classes'])}
- **Input:** {m['input_size'][0]}x{m['input_size'][1]} RGB, stretch resize, ImageNet mean/std (NCHW float32)
- **Anchors:** sizes {m['anchors'].get('sizes')}, ratios {m['anchors'].get('ratios')}, steps {m['anchors'].get('steps')}
- **Files:** {', '.join(f'`{k}` ({v} MB)' for k, v in size_mb.items())}
- **Training data:** {m['train_images']} sim frames of lines {', '.join(m.get('train_groups', []))};
  validation {m['val_images']} frames; dataset sha256 `{m['dataset_hash']}`
- **Training:** {m['iterations']} iterations, {m['epochs_run']} epochs, best epoch {m['best_epoch']},
  {m['train_seconds'] / 60:.1f} min{' (stopped by the time budget)' if m.get('stopped_by_time_budget') else ''}

## Accuracy (VOC07 mAP@0.5 of the ONNX model through the edge app's ONNX Runtime backend)

| split | lines | images | boxes | mAP@0.5 (VOC07 11-point) | mAP@0.5 (VOC2010+ area) | boxes found | {tpfp} |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

The test line was never seen in training nor used to pick the epoch (that was the validation line).
VOC07's 11-point mAP scores precision at recall 0, 0.1, ..., 1.0; the last point is 0 unless every box of the
split is found at some score ("boxes found" = 100 %), which caps it at 10/11 = 0.909 otherwise. The VOC2010+
figure is the area under the same precision-recall curve, without that cliff.
{linear_line}
FP32 vs FP16 on the test line: mAP {fp.get('fp32_map')} vs {fp.get('fp16_map')}; largest box difference between
matched detections {fp.get('max_box_diff_px')} px, largest score difference {fp.get('max_score_diff')},
{fp.get('unmatched')} unmatched detections.

![precision-recall]({m['model_name']}_pr.png)

## Reproduce

```sh
{m.get('make_command', 'make model')}
```

Exact training command:

```sh
{m['command']}
```

## Limits

Trained only on synthetic frames from the sim generator (5 line presets). On a real line, label a few hundred
frames with Ground Truth and retrain (`edge-app dataset split ...`, `edge-app train ...`): sim accuracy is not
a promise for real cameras.
"""


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", type=Path, required=True, help="train.py --model-dir")
    p.add_argument("--split", type=Path, required=True, help="dataset split folder (val.lst, test.lst, split.json)")
    p.add_argument("--out", type=Path, default=Path("models"))
    p.add_argument("--name", default="tray_detector")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--make-command", default="make model")
    args = p.parse_args(argv)

    metrics = json.loads((args.build / "metrics.json").read_text())
    split = json.loads((args.split / "split.json").read_text())
    onnx32, onnx16 = args.build / f"{args.name}.onnx", args.build / f"{args.name}_fp16.onnx"
    evaluation: dict = {"threshold": args.threshold}
    results = {}
    for name in ("val", "test"):
        lst = args.split / f"{name}.lst"
        if not lst.is_file():
            continue
        samples = samples_from_path(lst)
        res = evaluate_onnx(onnx32, samples, operating_threshold=args.threshold)
        results[name] = res
        evaluation[name] = {**res.to_dict(10), "groups": split["groups"][name]}
        print(f"{name} ({', '.join(split['groups'][name])}): mAP@0.5 {res.map:.4f} (VOC07 11-point; VOC2010+ area "
              f"{res.map_area:.4f}, {100 * res.max_recall:.1f} % of boxes found) on {len(samples)} images, "
              f"{res.totals()}", flush=True)
        if name == "test":
            r16 = evaluate_onnx(onnx16, samples, operating_threshold=args.threshold)
            evaluation["test_fp16"] = r16.to_dict(10)
            evaluation["fp32_vs_fp16"] = {"fp32_map": round(res.map, 4), "fp16_map": round(r16.map, 4),
                                          **max_box_difference(res.detections, r16.detections, args.threshold),
                                          "images": len(samples)}
            print(f"FP32 vs FP16 on test: {evaluation['fp32_vs_fp16']}", flush=True)
            lin = evaluate_onnx(onnx32, samples, operating_threshold=args.threshold, resize="linear")
            evaluation["test_linear_resize"] = {"map": round(lin.map, 4), "map_area": round(lin.map_area, 4),
                                                **lin.totals()}
            print(f"test with the app's bilinear resize: mAP@0.5 {lin.map:.4f}, {lin.totals()}", flush=True)
    metrics.update(model_name=args.name, evaluation=evaluation, train_groups=split["groups"]["train"],
                   make_command=args.make_command)
    args.out.mkdir(parents=True, exist_ok=True)
    for src in (onnx32, onnx16):
        _copy_atomic(src, args.out / src.name)
    for src in (args.build / f"{args.name}-symbol.json", args.build / f"{args.name}-0000.params"):
        if src.is_file():
            _copy_atomic(src, args.out / src.name)
    metrics["file_sizes"] = {f.name: (args.out / f.name).stat().st_size for f in (onnx32, onnx16)}
    plot_pr({f"{k} ({', '.join(split['groups'][k])})": v for k, v in results.items()}, args.out / f"{args.name}_pr.png")
    metrics.pop("history_detail", None)
    write_json(args.out / "metrics.json", metrics)
    from training.lst import atomic_write_text

    atomic_write_text(args.out / f"{args.name}.md", card_markdown(metrics))
    sizes = ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in metrics["file_sizes"].items())
    print(f"shipped {args.name} to {args.out}: {sizes}")
    return metrics


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # one line, not a traceback, for `make model`
        from edge_app.errors import EdgeAppError

        if isinstance(exc, EdgeAppError):
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        raise

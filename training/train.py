"""Train a GluonCV detector from scratch; SageMaker script-mode compatible.

Script mode runs ``python train.py --hyper-parameter value ...`` with the data channels in
``SM_CHANNEL_TRAIN`` / ``SM_CHANNEL_VALIDATION`` (optional ``SM_CHANNEL_TEST``) and expects the model in
``SM_MODEL_DIR``; checkpoints go to ``/opt/ml/checkpoints`` there (synced to S3, so a spot job resumes).
Locally the same file runs through ``edge-app train`` with explicit paths.

Recipe (why it converges from scratch on CPU):

* SSD anchors whose centres cover the whole image and whose sizes/aspect ratios come from the measured
  training boxes (`training.models`), so every object has well-matching anchors from the first step;
* BatchNorm in the backbone and in the extra layers (GluonCV's FeatureExpander ``use_bn=True``);
* LR: linear warm-up over ``--warmup-iters`` then cosine decay to 1 % by the last iteration (or by the
  time budget, whichever the schedule is sized for);
* strong augmentation (`training.augment`), several epochs;
* an exponential moving average of the weights (`training.weight_average`, ``--ema-decay``): validation and
  export use the averaged weights, which are steadier and generalise better than the raw ones; the best epoch
  by validation VOC07 mAP@0.5 is kept (``best.params``) and exported.

A hybridized GluonCV detector caches one graph: the training branch (raw predictions + anchors) or the
inference branch (decoded, NMS-ed boxes), whichever ran first. ``net.set_nms(...)`` clears that cache, so
it is called whenever we switch between training steps and validation.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shlex
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from edge_app.errors import EdgeAppError
from training.augment import apply_roi
from training.data import MEAN, STD, Sample, batches, load_rgb, samples_from_path, scale_boxes, to_input
from training.lst import atomic_write_text
from training.models import ARCHITECTURES, anchor_sizes_from_boxes, build_net, is_yolo, ratios_from_boxes
from training.weight_average import WeightAverage

log = logging.getLogger("training.train")


def str2bool(value: str) -> bool:
    """SageMaker passes hyperparameters as strings, booleans included ("True"/"False")."""
    if str(value).lower() in ("1", "true", "yes", "y", "on"):
        return True
    if str(value).lower() in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {value!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--arch", default="ssd_mobilenet0.25", choices=ARCHITECTURES)
    p.add_argument("--input-size", type=int, default=300, help="square network input (px)")
    p.add_argument("--classes", default="", help="comma-separated class names (default: from the data)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--iters-per-epoch", type=int, default=0, help="0 = one pass over the training images")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--optimizer", default="adam", choices=["adam", "sgd"])
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--wd", type=float, default=5e-4)
    p.add_argument("--warmup-iters", type=int, default=200)
    p.add_argument("--ema-decay", type=float, default=0.998,
                   help="validate and export an exponential moving average of the weights (0 = raw weights)")
    p.add_argument("--augment-strength", type=float, default=1.0)
    p.add_argument("--motion-blur", type=float, default=0.0,
                   help="share of training images with one tray motion-blurred (training/augment.py; 0 = off)")
    p.add_argument("--anchor-sizes", default="auto", help="'auto' (from the data) or comma-separated px")
    p.add_argument("--roi", default="", help="JSON polygon [[x, y], ...] in frame pixels: mask outside it like "
                   "the edge app's mask_outside_roi (train and validation)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-budget-min", type=float, default=0.0,
                   help="stop after this many minutes of training (0 = no limit); the best epoch is kept")
    p.add_argument("--val-every", type=int, default=1, help="validate every N epochs")
    p.add_argument("--max-val-images", type=int, default=0, help="0 = all")
    p.add_argument("--select-metric", default="voc07", choices=["voc07", "area"],
                   help="validation mAP@0.5 that picks the best epoch: VOC07 11-point, or VOC2010+ area (steadier: "
                        "VOC07's recall-1.0 point flips with the single hardest box)")
    p.add_argument("--resume", type=str2bool, default=True, help="continue from the checkpoint if present")
    p.add_argument("--init-params", default="", help="start from these weights (same arch/classes/anchors), e.g. "
                   "to fine-tune the shipped model on a new line; the run's state (epochs, best mAP) starts fresh")
    p.add_argument("--export-onnx", type=str2bool, default=True)
    p.add_argument("--model-name", default="tray_detector")
    p.add_argument("--model-version", default="")
    p.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN", ""))
    p.add_argument("--validation", default=os.environ.get("SM_CHANNEL_VALIDATION", ""))
    p.add_argument("--test", default=os.environ.get("SM_CHANNEL_TEST", ""))
    p.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "model"))
    p.add_argument("--checkpoint-dir", default="",
                   help="default: /opt/ml/checkpoints under SageMaker, else <model-dir>/checkpoints")
    p.add_argument("--threads", type=int, default=0, help="MXNet/OMP threads (0 = library default)")
    p.add_argument("--progress", type=str2bool, default=True)
    return p


def dataset_hash(samples: list[Sample]) -> str:
    """sha256 over image bytes and labels: the model card says exactly which data trained the model."""
    h = hashlib.sha256()
    for s in sorted(samples, key=lambda s: s.path):
        h.update(Path(s.path).name.encode())
        try:
            h.update(hashlib.sha256(Path(s.path).read_bytes()).digest())
        except OSError:
            h.update(b"missing")
        h.update(np.round(s.boxes, 2).astype(np.float32).tobytes())
    return h.hexdigest()


def lr_at(iteration: int, total: int, base_lr: float, warmup: int, time_fraction: float = 0.0) -> float:
    """Linear warm-up from 1 % to ``base_lr``, then cosine decay to 1 % of it at the end.

    "The end" is whichever comes first: ``total`` iterations or the time budget (``time_fraction`` = elapsed
    / budget), so a run stopped by its budget has still annealed its learning rate, which is where most of
    the final accuracy comes from.
    """
    if iteration < warmup:
        return base_lr * (0.01 + 0.99 * iteration / max(1, warmup))
    progress = min(1.0, max((iteration - warmup) / max(1, total - warmup), time_fraction))
    return base_lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


class ValidationSet:
    """Validation images resized once (uint8, cached) and their boxes at input scale."""

    def __init__(self, samples: list[Sample], size: int, limit: int = 0, roi: list | None = None) -> None:
        if limit and len(samples) > limit:
            idx = np.linspace(0, len(samples) - 1, limit).round().astype(int)
            samples = [samples[i] for i in idx]
        self.inputs, self.boxes = [], []
        for s in samples:
            img, boxes = apply_roi(load_rgb(s.path), s.boxes, roi)
            h, w = img.shape[:2]
            self.inputs.append(to_input(img, size))
            self.boxes.append(scale_boxes(boxes, (w, h), size))

    def __len__(self) -> int:
        return len(self.inputs)


def evaluate_net(net, val: ValidationSet, class_names: list[str], batch_size: int = 16, metric_name: str = "voc07"):
    """mAP@0.5 of the MXNet net on the validation set (inference branch): VOC07 11-point or VOC2010+ area."""
    import mxnet as mx
    from gluoncv.utils.metrics.voc_detection import VOC07MApMetric, VOCMApMetric

    from training.data import pad_boxes

    metric = (VOC07MApMetric if metric_name == "voc07" else VOCMApMetric)(iou_thresh=0.5, class_names=class_names)
    net.set_nms(nms_thresh=0.45, nms_topk=400, post_nms=100)  # also clears the cached training graph
    for start in range(0, len(val), batch_size):
        x = mx.nd.array(np.stack(val.inputs[start:start + batch_size]))
        ids, scores, bboxes = net(x)
        gt = pad_boxes(val.boxes[start:start + batch_size])
        metric.update(bboxes, ids, scores, mx.nd.array(gt[:, :, :4]), mx.nd.array(gt[:, :, 4:5]))
    net.set_nms(nms_thresh=0.45, nms_topk=400, post_nms=100)  # back to a clean cache for training
    names, values = metric.get()
    return float(values[-1]), metric


class SSDStep:
    """One SSD training step: targets from anchors, MultiBox loss (hard negative mining 3:1)."""

    def __init__(self, net, size: int) -> None:
        import mxnet as mx
        from gluoncv.loss import SSDMultiBoxLoss
        from gluoncv.model_zoo.ssd.target import SSDTargetGenerator

        with mx.autograd.train_mode():
            _, _, self.anchors = net(mx.nd.zeros((1, 3, size, size)))
        self.target = SSDTargetGenerator(iou_thresh=0.5, stds=(0.1, 0.1, 0.2, 0.2), negative_mining_ratio=-1)
        self.loss = SSDMultiBoxLoss()
        self.net = net

    def __call__(self, x, gt) -> dict[str, float]:
        import mxnet as mx

        gt_nd = mx.nd.array(gt)
        cls_t, box_t, _ = self.target(self.anchors, None, gt_nd[:, :, :4], gt_nd[:, :, 4:5])
        # Padding rows (-1 boxes, zero area) encode to log(0) = -inf on unmatched anchors; those entries are
        # masked by the loss, but inf * 0 is NaN, so zero them first.
        box_t = mx.nd.where(mx.nd.abs(box_t) < 1e4, box_t, mx.nd.zeros_like(box_t))
        with mx.autograd.record():
            cls_p, box_p, _ = self.net(mx.nd.array(x))
            total, cls_l, box_l = self.loss([cls_p], [box_p], [cls_t], [box_t])
            mx.autograd.backward(total)
        return {"loss": float(total[0].sum().asscalar()), "cls": float(cls_l[0].sum().asscalar()),
                "box": float(box_l[0].sum().asscalar())}


class YOLOStep:
    """One YOLOv3 training step: per-image targets (GluonCV's prefetch generator), the net's own losses."""

    def __init__(self, net, size: int, num_classes: int) -> None:
        import mxnet as mx
        from gluoncv.model_zoo.yolo.yolo_target import YOLOV3PrefetchTargetGenerator

        self.fake_x = mx.nd.zeros((1, 3, size, size))
        with mx.autograd.train_mode():
            _, self.anchors, self.offsets, self.feat_maps, _, _, _, _ = net(self.fake_x)
        self.target = YOLOV3PrefetchTargetGenerator(num_class=num_classes)
        self.net = net

    def __call__(self, x, gt) -> dict[str, float]:
        import mxnet as mx

        per_image = []
        for b in range(gt.shape[0]):
            boxes = gt[b][gt[b, :, 4] >= 0]
            if len(boxes) == 0:
                boxes = np.zeros((1, 5), np.float32) - 1
            targets = self.target(self.fake_x, self.feat_maps, self.anchors, self.offsets,
                                  mx.nd.array(boxes[None, :, :4]), mx.nd.array(boxes[None, :, 4:5]), None)
            per_image.append([t[0] for t in targets])
        stacked = [mx.nd.stack(*[p[i] for p in per_image]) for i in range(5)]
        gt_boxes = mx.nd.array(gt[:, :, :4])
        with mx.autograd.record():
            losses = self.net(mx.nd.array(x), gt_boxes, *stacked)
            total = sum(loss.sum() for loss in losses) / x.shape[0]
            total.backward()
        return {"loss": float(total.asscalar())}


def _class_names_near(train: Path) -> list[str]:
    """LST files carry class ids only; `edge-app dataset split` writes the names into split.json beside them."""
    folder = train if train.is_dir() else train.parent
    split_json = folder / "split.json"
    if split_json.is_file():
        return list(json.loads(split_json.read_text(encoding="utf-8")).get("class_names") or [])
    return []


def _checkpoint_dir(args) -> Path:
    if args.checkpoint_dir:
        return Path(args.checkpoint_dir)
    if os.environ.get("SM_MODEL_DIR") and Path("/opt/ml").is_dir():
        return Path("/opt/ml/checkpoints")
    return Path(args.model_dir) / "checkpoints"


def run(argv: list[str] | None = None) -> dict:
    """Train, keep the best epoch, export; returns the metrics dict (also written to metrics.json)."""
    args = build_parser().parse_args(argv)
    command = "edge-app train " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        os.environ["MXNET_CPU_WORKER_NTHREADS"] = str(args.threads)
    import mxnet as mx
    from tqdm import tqdm

    if not 0.0 <= args.motion_blur <= 1.0:
        raise EdgeAppError(f"--motion-blur: expected a share in [0, 1] (got {args.motion_blur})")
    if not args.train:
        raise EdgeAppError("--train: no training data (give a folder/LST/manifest or set SM_CHANNEL_TRAIN)")
    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = _checkpoint_dir(args)
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    names_from_data: list[str] = []
    train_samples = samples_from_path(Path(args.train), names_from_data)
    val_samples = samples_from_path(Path(args.validation)) if args.validation else []
    classes = [c for c in args.classes.split(",") if c] or names_from_data or _class_names_near(Path(args.train))
    if not classes:
        ids = sorted({int(c) for s in train_samples for c in s.boxes[:, 4]})
        classes = [f"class_{i}" for i in range(max(ids) + 1)] if ids else ["object"]
    size = args.input_size
    mx.random.seed(args.seed)
    np.random.seed(args.seed)

    sides, aspects = [], []
    for s in train_samples:
        if len(s.boxes) and s.width:
            b = scale_boxes(s.boxes, (s.width, s.height), size)
            w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
            sides.extend(np.sqrt(w * h))
            aspects.extend(w / np.maximum(h, 1e-3))
    sizes = (anchor_sizes_from_boxes(np.array(sides), size) if args.anchor_sizes == "auto"
             else [float(v) for v in args.anchor_sizes.split(",")])
    ratios = ratios_from_boxes(np.array(aspects))
    net, anchor_cfg = build_net(args.arch, classes, size, sizes=sizes, ratios=ratios)
    log.info("%s, classes %s, anchors %s", args.arch, classes, anchor_cfg)
    if args.init_params:
        net.load_parameters(args.init_params)
        log.info("initial weights from %s", args.init_params)

    iters_per_epoch = args.iters_per_epoch or max(1, len(train_samples) // args.batch_size)
    total_iters = iters_per_epoch * args.epochs
    state = {"epoch": 0, "iteration": 0, "best_map": -1.0, "best_epoch": -1, "history": []}
    state_file = ckpt_dir / "state.json"
    last_params, best_params = ckpt_dir / "last.params", ckpt_dir / "best.params"
    trainer_states = ckpt_dir / "last.states"
    ema_file = ckpt_dir / "last.ema"
    if args.resume and state_file.is_file() and last_params.is_file():
        state = json.loads(state_file.read_text())
        net.load_parameters(str(last_params))
        log.info("resumed from %s at epoch %d (best mAP %.4f)", ckpt_dir, state["epoch"], state["best_map"])

    net.hybridize(static_alloc=True, static_shape=True)
    opt_params = ({"learning_rate": args.lr, "wd": args.wd} if args.optimizer == "adam"
                  else {"learning_rate": args.lr, "wd": args.wd, "momentum": args.momentum})
    trainer = mx.gluon.Trainer(net.collect_params(), args.optimizer, opt_params)
    if args.resume and trainer_states.is_file() and state["iteration"]:
        trainer.load_states(str(trainer_states))
    step = YOLOStep(net, size, len(classes)) if is_yolo(args.arch) else SSDStep(net, size)
    # After the step builders ran the net once, so every deferred-shape parameter exists.
    ema = WeightAverage(net, args.ema_decay) if args.ema_decay > 0 else None
    averaged = ema.swapped_in if ema is not None else nullcontext  # the weights validation and export use
    if ema is not None and args.resume and ema_file.is_file() and state["iteration"]:
        ema.load_state(mx.nd.load(str(ema_file)), state["iteration"])
    roi = json.loads(args.roi) if args.roi else None
    val = ValidationSet(val_samples, size, args.max_val_images, roi) if val_samples else None

    start = time.monotonic()
    budget_s = args.time_budget_min * 60 if args.time_budget_min > 0 else math.inf
    data = batches(train_samples, args.batch_size, size, seed=args.seed + 1000 * state["epoch"],
                   strength=args.augment_strength, roi=roi, motion_blur_p=args.motion_blur)
    stopped_by_budget = False
    epoch_times: list[float] = []
    while state["epoch"] < args.epochs:
        epoch = state["epoch"]
        t_epoch = time.monotonic()
        bar = tqdm(range(iters_per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}", disable=not args.progress,
                   leave=False, dynamic_ncols=True)
        losses: list[float] = []
        for _ in bar:
            time_fraction = (time.monotonic() - start) / budget_s if budget_s < math.inf else 0.0
            trainer.set_learning_rate(lr_at(state["iteration"], total_iters, args.lr, args.warmup_iters,
                                            time_fraction))
            x, gt = next(data)
            out = step(x, gt)
            trainer.step(1)
            if ema is not None:
                ema.update()
            state["iteration"] += 1
            losses.append(out["loss"])
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", lr=f"{trainer.learning_rate:.2e}")
        state["epoch"] += 1
        record = {"epoch": state["epoch"], "iteration": state["iteration"], "loss": float(np.mean(losses)),
                  "seconds": round(time.monotonic() - t_epoch, 1)}
        if val is not None and (state["epoch"] % args.val_every == 0 or state["epoch"] == args.epochs):
            if ema is not None:
                record["val_map_raw"] = round(evaluate_net(net, val, classes, metric_name=args.select_metric)[0], 4)
            with averaged():
                val_map, _ = evaluate_net(net, val, classes, metric_name=args.select_metric)
                record["val_map"] = round(val_map, 4)
                if val_map > state["best_map"]:
                    state["best_map"], state["best_epoch"] = val_map, state["epoch"]
                    net.save_parameters(str(best_params))
        elif val is None:
            with averaged():
                net.save_parameters(str(best_params))
            state["best_epoch"] = state["epoch"]
        state["history"].append(record)
        net.save_parameters(str(last_params))
        trainer.save_states(str(trainer_states))
        if ema is not None:
            mx.nd.save(str(ema_file), ema.state())
        atomic_write_text(state_file, json.dumps(state, indent=1))
        print(f"epoch {record['epoch']}: loss {record['loss']:.4f}"
              + (f", val mAP {record['val_map']:.4f}" if "val_map" in record else "")
              + (f" (raw weights {record['val_map_raw']:.4f})" if "val_map_raw" in record else "")
              + f" (best {state['best_map']:.4f} @ {state['best_epoch']}), {record['seconds']} s", flush=True)
        epoch_times.append(time.monotonic() - t_epoch)
        elapsed = time.monotonic() - start
        if elapsed + float(np.mean(epoch_times)) > budget_s:
            stopped_by_budget = state["epoch"] < args.epochs
            if stopped_by_budget:
                print(f"time budget of {args.time_budget_min} min reached after epoch {state['epoch']}", flush=True)
            break
    train_seconds = time.monotonic() - start
    data.close()

    net.load_parameters(str(best_params))
    metrics = {
        "architecture": args.arch, "classes": classes, "input_size": [size, size], "anchors": anchor_cfg,
        "best_epoch": state["best_epoch"], "val_map_mxnet": round(state["best_map"], 4),
        "epochs_run": state["epoch"], "iterations": state["iteration"],
        "train_seconds": round(train_seconds, 1), "stopped_by_time_budget": stopped_by_budget,
        "train_images": len(train_samples), "val_images": len(val_samples),
        "dataset_hash": dataset_hash(train_samples + val_samples), "command": command,
        "hyperparameters": {k: v for k, v in vars(args).items() if k not in ("train", "validation", "test")},
        "history": state["history"],
    }
    if args.export_onnx:
        from training.export import export_fp16, export_mxnet, export_onnx, model_metadata

        prefix = model_dir / args.model_name
        symbol, params = export_mxnet(net, prefix, (size, size))
        version = args.model_version or f"{args.model_name}-{time.strftime('%Y%m%d')}-{metrics['dataset_hash'][:8]}"
        meta = model_metadata(classes, (size, size), version, args.arch, MEAN, STD)
        onnx_path = export_onnx(symbol, params, model_dir / f"{args.model_name}.onnx", (size, size), meta)
        export_fp16(onnx_path, model_dir / f"{args.model_name}_fp16.onnx")
        metrics["model_version"] = version
        metrics["files"] = sorted(p.name for p in model_dir.iterdir() if p.is_file())
    atomic_write_text(model_dir / "metrics.json", json.dumps(metrics, indent=1))
    return metrics


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        run(argv)
    except EdgeAppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

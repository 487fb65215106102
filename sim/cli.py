"""`edge-app sim ...` commands."""

from pathlib import Path

import typer

from sim.camera.cli import serve_command

app = typer.Typer(help="Synthetic packaging-line video, detection scenarios and camera replay.",
                  no_args_is_help=True)
app.command("serve")(serve_command)


@app.command("generate")
def generate_command(
    out: Path = typer.Option(..., "--out", help="Output folder (video.mp4, truth.json, boxes.jsonl, frames/, "
                                                 "output.manifest)"),
    line: str = typer.Option("line-1", help="Line preset: line-1 .. line-5"),
    seed: int = typer.Option(1, help="Random seed: same seed and options, same bytes"),
    fps: float = typer.Option(15.0, help="Frames per second"),
    width: int = typer.Option(1280, help="Frame width (px)"),
    height: int = typer.Option(720, help="Frame height (px)"),
    duration: float | None = typer.Option(None, help="Video length in seconds (instead of --bins)"),
    bins: int | None = typer.Option(None, help="Fill this many bins, then cover the last one (default 3)"),
    min_trays: int | None = typer.Option(None, help="Fewest trays per bin (default: the line's)"),
    max_trays: int | None = typer.Option(None, help="Most trays per bin (default: the line's; <= slots)"),
    fill_rate: float | None = typer.Option(None, help="Mean seconds per tray (default: the line's)"),
    occlusion_rate: float = typer.Option(0.3, help="Chance after each tray of an extra empty-hand occlusion"),
    sample_every: int = typer.Option(15, help="Save every Nth frame as JPEG + manifest line (0: none)"),
    no_video: bool = typer.Option(False, "--no-video", help="Skip video.mp4 (only sampled frames get pixels)"),
    min_visible: float = typer.Option(0.5, help="Label a tray in the manifest when this fraction is visible"),
    benchmark: bool = typer.Option(False, "--benchmark", help="Print render/encode timing"),
) -> None:
    """Render a synthetic packaging-line video with exact per-frame and per-bin ground truth."""
    from sim.generate import GenerateParams, generate

    params = GenerateParams(out=out, line=line, seed=seed, fps=fps, width=width, height=height, duration=duration,
                            bins=bins, min_trays=min_trays, max_trays=max_trays, fill_rate=fill_rate,
                            occlusion_rate=occlusion_rate, sample_every=sample_every, video=not no_video,
                            min_visible=min_visible)
    r = generate(params)
    media = r.frames / fps
    print(f"wrote {out}: {r.frames} frames ({media:.1f} s), {r.bins} bins, {r.total_trays} trays")
    if benchmark:
        print(f"benchmark: {width}x{height} @ {fps:g} fps, {r.frames} frames: wall {r.wall_s:.2f} s = "
              f"{r.fps:.1f} frames/s ({media / r.wall_s:.2f}x real time); CPU {r.cpu_s:.2f} s = "
              f"{r.frames / max(r.cpu_s, 1e-9):.1f} frames/s per core ({media / max(r.cpu_s, 1e-9):.2f}x real time); "
              f"wall per frame: render {1000 * r.render_s / r.frames:.1f} ms, "
              f"encode+write {1000 * r.encode_s / r.frames:.1f} ms")


@app.command("detections")
def detections_command(
    out: Path = typer.Option(..., "--out", help="Output folder (detections.jsonl, truth.json, counting.yaml)"),
    line: str = typer.Option("line-1", help="Line preset: line-1 .. line-4 (see sim/scenarios.py)"),
    seed: int = typer.Option(1, help="Random seed: same seed and options, same bytes"),
    duration: float = typer.Option(3600.0, help="Simulated production in seconds"),
    fps: float | None = typer.Option(None, help="Frames per second (default: the line's)"),
    miss_rate: float = typer.Option(0.02, help="Per-tray, per-frame miss probability"),
    fp_per_min: float = typer.Option(4.0, help="False-positive bursts per minute (above threshold)"),
    jitter: float = typer.Option(0.03, help="Box jitter, fraction of the box size"),
    occlusions_per_min: float | None = typer.Option(None, help="Hand occlusion bursts per minute (0.5-3 s)"),
    outages: int | None = typer.Option(None, help="Camera outages (no frames) in the run"),
    error_scale: float = typer.Option(1.0, help="Scale miss/false-positive rates and jitter (2: a worse detector)"),
) -> None:
    """Emit replay detections for hours of production (no rendering) with a detector error model + truth."""
    from dataclasses import replace

    from edge_app.errors import EdgeAppError
    from sim.error_model import ErrorModel
    from sim.scenarios import LINE_PRESETS, Scenario, write_detections

    if line not in LINE_PRESETS:
        raise EdgeAppError(f"--line: expected one of {', '.join(LINE_PRESETS)}, got {line!r}")
    if duration <= 0:
        raise EdgeAppError(f"--duration: expected a positive number of seconds, got {duration}")
    spec = LINE_PRESETS[line]
    changes: dict = {}
    if fps is not None:
        changes["fps"] = fps
    if occlusions_per_min is not None:
        changes["occlusions_per_min"] = occlusions_per_min
    if outages is not None:
        changes["outages"] = outages
    model = ErrorModel(miss_rate=miss_rate, fp_per_min=fp_per_min, jitter=jitter)
    if error_scale != 1.0:
        model = model.scaled(error_scale)
    scenario = Scenario(replace(spec, **changes), duration_s=duration, error_model=model, seed=seed)
    r = write_detections(scenario, out)
    print(f"wrote {out}: {r['frames']} frames ({duration / 3600:.2f} h), {r['bins']} bins, {r['total_trays']} trays")
    print(f"count it: edge-app count --detections {out / 'detections.jsonl'} --config {out / 'counting.yaml'}")


@app.command("anomalies")
def anomalies_command(
    out: Path = typer.Option(..., "--out", help="Output folder: <out>/<part>/{train/normal,test/normal,"
                                                 "test/abnormal,test/mask}/"),
    parts: str = typer.Option("carrier,surface,label", help="Comma-separated parts: carrier, surface, label"),
    n_train: int = typer.Option(50, help="Normal training images per part"),
    n_test_normal: int = typer.Option(20, help="Normal test images per part"),
    n_test_abnormal: int = typer.Option(30, help="Defective test images per part (cycling the defect types)"),
    size: int = typer.Option(256, help="Image side in pixels"),
    seed: int = typer.Option(0, help="Random seed: same seed and options, same images"),
) -> None:
    """Render parts for visual anomaly inspection, with ground-truth defect masks (see sim/anomaly_parts.py)."""
    from edge_app.errors import EdgeAppError
    from sim.anomaly_parts import PARTS, write_dataset

    chosen = tuple(p.strip() for p in parts.split(",") if p.strip())
    unknown = [p for p in chosen if p not in PARTS]
    if unknown or not chosen:
        raise EdgeAppError(f"--parts: expected some of {', '.join(PARTS)}, got {parts!r}")
    if min(n_train, n_test_normal, n_test_abnormal) < 0 or size < 64:
        raise EdgeAppError("--n-*: expected counts >= 0 and --size >= 64")
    counts = write_dataset(out, chosen, n_train, n_test_normal, n_test_abnormal, size, seed)
    for part, c in counts.items():
        print(f"wrote {out / part}: {c['train_normal']} train normal, {c['test_normal']} test normal, "
              f"{c['test_abnormal']} test abnormal (+ masks)")

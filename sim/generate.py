"""`edge-app sim generate`: render a packaging-line video with exact ground truth.

Output contract (other parts depend on it; see also :mod:`sim.truth` and :mod:`sim.manifest`), in ``--out DIR``:

* ``video.mp4``: MPEG-4 (OpenCV ``mp4v``), ``fps``, ``width x height`` (omitted with ``--no-video``);
* ``truth.json``: per-bin true counts and times, totals;
* ``boxes.jsonl``: per-frame boxes and visible fraction of every visible tray;
* ``frames/<line>-s<seed>-<frame:06d>.jpg``: every ``sample_every``-th frame (frame 0 included), JPEG at the
  line's quality (65-85: real JPEG artefacts in the training images);
* ``output.manifest``: Ground Truth bounding-box output manifest of the sampled frames (class ``tray``).

Same parameters and seed give the same bytes in every output file. Random streams are split per purpose (scene
plan, sprites, each bin, each frame's noise), so for example ``--no-video`` or another ``--sample-every`` does
not change the scene or any frame's pixels. With ``--no-video`` only sampled frames are rendered to pixels (the
truth of every frame is still computed), which makes dataset generation several times faster.

``--out`` is the generator's own folder: the outputs of an earlier run that this run does not produce (a video,
samples) are removed when the run succeeds, so the folder never mixes two runs; until then the earlier outputs
stay untouched (new files are written under temporary names and moved into place).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_app.errors import EdgeAppError
from sim.files import AtomicTextFile, atomic_write_bytes, atomic_write_text, fsync_path
from sim.lines import get_preset, jittered, with_overrides
from sim.manifest import DEFAULT_MIN_VISIBLE, manifest_line
from sim.pinhole import Camera
from sim.render import N_TRAY_VARIANTS, Renderer, rng_for
from sim.scene import plan
from sim.truth import boxes_line, truth_record

DEFAULT_BINS = 3


@dataclass(frozen=True)
class GenerateParams:
    out: Path
    line: str = "line-1"
    seed: int = 1
    fps: float = 15.0
    width: int = 1280
    height: int = 720
    duration: float | None = None
    bins: int | None = None
    min_trays: int | None = None
    max_trays: int | None = None
    fill_rate: float | None = None
    occlusion_rate: float = 0.3
    sample_every: int = 15
    video: bool = True
    min_visible: float = DEFAULT_MIN_VISIBLE


@dataclass(frozen=True)
class GenerateResult:
    frames: int
    bins: int
    total_trays: int
    wall_s: float
    cpu_s: float  # process CPU time (all threads): the honest cost on a shared machine
    render_s: float  # scene + truth + pixels + effects
    encode_s: float  # video encoding and sample/JPEG writes

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else math.inf


def check_params(p: GenerateParams) -> None:
    """Bad values are user errors, reported as one line naming the option."""
    def bad(opt: str, what: str, got: object) -> EdgeAppError:
        return EdgeAppError(f"sim generate: {opt}: expected {what}, got {got}")

    if not (1 <= p.fps <= 120):
        raise bad("--fps", "1..120", p.fps)
    if not (64 <= p.width <= 3840) or p.width % 2:
        raise bad("--width", "an even number of pixels in 64..3840", p.width)
    if not (64 <= p.height <= 2160) or p.height % 2:
        raise bad("--height", "an even number of pixels in 64..2160", p.height)
    if p.duration is not None and p.bins is not None:
        raise EdgeAppError("sim generate: --duration/--bins: give one of them, not both")
    if p.duration is not None and not (0 < p.duration <= 24 * 3600):
        raise bad("--duration", "seconds in (0, 86400]", p.duration)
    if p.bins is not None and not (1 <= p.bins <= 10000):
        raise bad("--bins", "1..10000", p.bins)
    if not (0.0 <= p.occlusion_rate <= 1.0):
        raise bad("--occlusion-rate", "a probability in 0..1", p.occlusion_rate)
    if p.sample_every < 0:
        raise bad("--sample-every", "0 (no samples) or a positive frame interval", p.sample_every)
    if not (0.0 < p.min_visible <= 1.0):
        raise bad("--min-visible", "a fraction in (0, 1]", p.min_visible)
    if p.seed < 0:
        raise bad("--seed", "a non-negative integer", p.seed)
    if (p.min_trays is None) != (p.max_trays is None):
        raise EdgeAppError("sim generate: --min-trays/--max-trays: give both or neither")


def generate(p: GenerateParams) -> GenerateResult:
    """Render and write everything (see the module docstring); returns counts and timings."""
    import cv2

    check_params(p)
    preset = get_preset(p.line)
    trays = (p.min_trays, p.max_trays) if p.min_trays is not None and p.max_trays is not None else None
    preset = jittered(with_overrides(preset, trays, p.fill_rate), rng_for(p.seed, 9))
    try:
        p.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeAppError(f"sim generate: --out: cannot create {p.out}: {exc.strerror}") from None
    cam = Camera.looking_at_bin(p.width, p.height, preset.tilt_deg, preset.yaw_deg, preset.roll_deg,
                                preset.camera_height_cm)
    corners = cam.to_plane(np.array([[0, 0], [p.width, 0], [p.width, p.height], [0, p.height]], np.float64))
    view = (corners[:, 0].min(), corners[:, 0].max(), corners[:, 1].min(), corners[:, 1].max())
    n_bins = p.bins if p.bins is not None or p.duration is not None else DEFAULT_BINS
    timeline = plan(preset, rng_for(p.seed, 1), view, n_bins, p.duration, p.occlusion_rate, N_TRAY_VARIANTS)
    frames = max(1, int(round(timeline.end_t * p.fps)) if p.duration is not None
                 else int(math.ceil(timeline.end_t * p.fps)))
    renderer = Renderer(preset, cam, timeline, p.seed, p.fps)

    frames_dir = p.out / ".frames.partial"  # becomes frames/ when the run succeeds
    if frames_dir.exists():
        shutil.rmtree(frames_dir)
    if p.sample_every:
        frames_dir.mkdir()
    video_tmp = p.out / ".video.partial.mp4"
    writer = None
    if p.video:
        writer = cv2.VideoWriter(str(video_tmp), cv2.VideoWriter_fourcc(*"mp4v"), p.fps, (p.width, p.height))
        if not writer.isOpened():
            raise EdgeAppError(f"sim generate: --out: OpenCV cannot write an mp4v video into {p.out}")
    boxes_file = AtomicTextFile(p.out / "boxes.jsonl")
    manifest_file = AtomicTextFile(p.out / "output.manifest")
    t_start, cpu_start = time.perf_counter(), time.process_time()
    render_s = encode_s = 0.0
    try:
        for i in range(frames):
            t = i / p.fps
            sampled = p.sample_every > 0 and i % p.sample_every == 0
            t0 = time.perf_counter()
            image, truths = renderer.render(t, i, want_image=p.video or sampled)
            t1 = time.perf_counter()
            boxes_file.write(boxes_line(i, p.fps, truths))
            if writer is not None and image is not None:
                writer.write(image)
            if sampled and image is not None:
                name = f"{p.line}-s{p.seed}-{i:06d}.jpg"
                ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, preset.jpeg_quality])
                atomic_write_bytes(frames_dir / name, buf.tobytes())
                labelled = [tr.box for tr in sorted(truths, key=lambda x: x.tray_id) if tr.visible >= p.min_visible]
                manifest_file.write(manifest_line(f"frames/{name}", p.width, p.height, labelled, p.line, p.seed, t))
            render_s += t1 - t0
            encode_s += time.perf_counter() - t1
    except BaseException:
        boxes_file.abort()
        manifest_file.abort()
        shutil.rmtree(frames_dir, ignore_errors=True)
        if writer is not None:
            writer.release()
            video_tmp.unlink(missing_ok=True)
        raise
    if writer is not None:
        t1 = time.perf_counter()
        writer.release()
        fsync_path(video_tmp)
        video_tmp.replace(p.out / "video.mp4")
        encode_s += time.perf_counter() - t1
    boxes_file.commit()
    # the folder must never mix two runs: outputs this run does not write are removed (only after success)
    if not p.video:
        (p.out / "video.mp4").unlink(missing_ok=True)
    if (p.out / "frames").exists():
        shutil.rmtree(p.out / "frames")
    if p.sample_every:
        frames_dir.replace(p.out / "frames")
        manifest_file.commit()
    else:
        manifest_file.abort()
        (p.out / "output.manifest").unlink(missing_ok=True)
    wall, cpu = time.perf_counter() - t_start, time.process_time() - cpu_start
    header = {"line": p.line, "seed": p.seed, "fps": p.fps if p.fps % 1 else int(p.fps), "width": p.width,
              "height": p.height}
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(p).items() if k != "out"}
    truth = truth_record(timeline, frames, p.fps, header)
    truth["label_min_visible"] = p.min_visible
    truth["params"] = params
    atomic_write_text(p.out / "truth.json", json.dumps(truth, indent=1) + "\n")
    return GenerateResult(frames, len(truth["bins"]), truth["total_trays"], wall, cpu, render_s, encode_s)

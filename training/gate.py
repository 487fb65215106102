"""Evaluation gate: promote a newly trained model only if it is not worse than the deployed one.

Both models are evaluated *now*, on the same held-out images (the test split: lines the candidate never saw),
through the edge app's own ONNX Runtime backend (`training.evaluate.evaluate_onnx`, VOC07 mAP@0.5), so the
comparison is not skewed by a stored score from another data set or another code version. Rule::

    promote  <=>  mAP(candidate) >= mAP(deployed) - margin        (margin in absolute mAP, e.g. 0.01)

A small margin accepts a model that is statistically indistinguishable (a few hundred held-out boxes give mAP
noise of about a point) but has learned from newer data; a large drop is refused. With no deployed model the
first candidate is promoted. Held-out data without any box cannot rank detectors and is an error.

On promotion the candidate's Panorama package version is registered with the Panorama module's own functions:
`edge_app.panorama.build.build` (an immutable release with the candidate's MXNet export as the model asset)
and `Deployer.publish_packages` (upload + ``RegisterPackageVersion``). Deploying it to a device stays a separate,
deliberate step (``edge-app panorama deploy``). The decision and both scores go to ``gate.json`` + ``gate.md``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_app.errors import EdgeAppError


@dataclass
class GateDecision:
    promote: bool
    reason: str
    candidate_model: str
    candidate_map: float
    deployed_model: str | None
    deployed_map: float | None
    margin: float
    images: int
    gt_boxes: int
    data: list[str]
    decided_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    candidate_ap_per_class: dict[str, float] = field(default_factory=dict)
    deployed_ap_per_class: dict[str, float] = field(default_factory=dict)
    registered: dict | None = None

    @property
    def delta(self) -> float | None:
        return None if self.deployed_map is None else self.candidate_map - self.deployed_map

    def to_dict(self) -> dict:
        return {**asdict(self), "delta": None if self.delta is None else round(self.delta, 4)}


def decide(candidate_map: float, deployed_map: float | None, margin: float) -> tuple[bool, str]:
    """The rule of the module docstring, with the reason in words."""
    if deployed_map is None:
        return True, "no deployed model to compare with: the first model is promoted"
    floor = deployed_map - margin
    if candidate_map >= floor:
        return True, (f"candidate mAP {candidate_map:.4f} >= deployed {deployed_map:.4f} - margin {margin:.4f} "
                      f"= {floor:.4f}")
    return False, (f"candidate mAP {candidate_map:.4f} < deployed {deployed_map:.4f} - margin {margin:.4f} "
                   f"= {floor:.4f}: kept the deployed model")


def evaluate(candidate: Path, deployed: Path | None, data: list[Path], margin: float) -> GateDecision:
    from training.data import samples_from_path
    from training.evaluate import evaluate_onnx

    samples = [s for path in data for s in samples_from_path(path)]
    boxes = sum(len(s.boxes) for s in samples)
    if not samples or boxes == 0:
        raise EdgeAppError(f"--data: {', '.join(map(str, data))}: no held-out boxes; a gate needs labelled images")
    cand = evaluate_onnx(candidate, samples)
    dep = evaluate_onnx(deployed, samples) if deployed is not None else None
    promote, reason = decide(cand.map, dep.map if dep else None, margin)
    return GateDecision(promote, reason, str(candidate), round(cand.map, 4), str(deployed) if deployed else None,
                        round(dep.map, 4) if dep else None, margin, len(samples), boxes, [str(p) for p in data],
                        candidate_ap_per_class={k: round(v, 4) for k, v in cand.ap_per_class.items()},
                        deployed_ap_per_class={k: round(v, 4) for k, v in dep.ap_per_class.items()} if dep else {})


@dataclass
class PanoramaTarget:
    """Where and how to register: the Panorama project root, the account, the code container tar, clients."""

    root: Path
    panorama: Any
    s3: Any
    account: str | None = None
    container_tar: Path | None = None
    build_dir: Path | None = None


def register_candidate(model_prefix: Path, target: PanoramaTarget) -> dict:
    """Build the next release with the candidate's MXNet export and register its package versions."""
    from edge_app.panorama.build import build
    from edge_app.panorama.deploy import Deployer, DeployState
    from edge_app.panorama.project import load_project

    for suffix in ("-symbol.json", "-0000.params"):
        if not Path(f"{model_prefix}{suffix}").is_file():
            raise EdgeAppError(f"{model_prefix}{suffix}: not found; the candidate's MXNet export (written by "
                               f"training next to the ONNX file) is the Panorama model asset")
    release = build(target.root, account=target.account, container_tar=target.container_tar,
                    model_prefix=model_prefix, build_dir=target.build_dir)
    project = load_project(target.root)
    state = DeployState(target.root / project.manifest["deploy"]["state_file"])
    published = Deployer(target.panorama, target.s3, state).publish_packages(release)
    return {"version": release.version, "release": str(release.path), "packages": published}


def write_report(decision: GateDecision, out_dir: Path) -> tuple[Path, Path]:
    from training.lst import atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "gate.json", out_dir / "gate.md"
    atomic_write_text(json_path, json.dumps(decision.to_dict(), indent=1))

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    delta = decision.delta
    lines = [
        f"# Evaluation gate: {'PROMOTED' if decision.promote else 'REFUSED'}", "",
        f"{decision.reason}.", "",
        "| model | file | mAP@0.5 (VOC07) |", "|---|---|---|",
        f"| candidate | `{decision.candidate_model}` | {fmt(decision.candidate_map)} |",
        f"| deployed | `{decision.deployed_model or '(none)'}` | {fmt(decision.deployed_map)} |", "",
        f"- difference: {'-' if delta is None else f'{delta:+.4f}'} (margin {decision.margin:.4f})",
        f"- held-out data: {decision.images} images, {decision.gt_boxes} boxes from "
        + ", ".join(f"`{d}`" for d in decision.data),
        f"- decided at {decision.decided_at}",
    ]
    if decision.registered:
        lines.append(f"- registered Panorama package version {decision.registered['version']} "
                     f"({', '.join(p['name'] for p in decision.registered['packages'])})")
    atomic_write_text(md_path, "\n".join(lines) + "\n")
    return json_path, md_path


def run_gate(candidate: Path, deployed: Path | None, data: list[Path], *, margin: float, out_dir: Path,
             model_prefix: Path | None = None, target: PanoramaTarget | None = None) -> GateDecision:
    """Evaluate, decide, register on promotion (when a target is given), write the report."""
    decision = evaluate(candidate, deployed, data, margin)
    if decision.promote and target is not None:
        prefix = model_prefix or Path(candidate).with_suffix("")
        decision.registered = register_candidate(prefix, target)
    write_report(decision, out_dir)
    return decision

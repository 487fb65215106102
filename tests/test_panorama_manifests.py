"""Panorama project files: JSON Schemas and the cross-reference checks, on the real files and broken copies."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import REPO

sys.path.insert(0, str(Path(__file__).resolve().parent))
from panorama_helpers import copy_project, edit_json  # noqa: E402

from edge_app.errors import EdgeAppError  # noqa: E402
from edge_app.panorama import manifests  # noqa: E402
from edge_app.panorama.project import load_project  # noqa: E402

GRAPH = "graphs/tray-counter/graph.json"
CODE = "packages/123456789012-tray_counter_code-1.0"
MODEL = "packages/123456789012-tray_detector_model-1.0"
OVERRIDES = "graphs/tray-counter/deployment_overrides/override_multiple_cameras.json"


@pytest.mark.parametrize("kind", manifests.SCHEMAS)
def test_schemas_are_valid_draft7(kind: str) -> None:
    assert manifests.validator(kind).schema["$schema"].startswith("http://json-schema.org/draft-07")


def test_repository_project_passes_every_check() -> None:
    project = load_project(REPO)
    assert set(project.packages) == {"tray_counter_code", "tray_detector_model"}
    assert project.parameter_value("model_input_size") == 300
    descriptor = project.packages["tray_detector_model"].descriptor["mlModelDescriptor"]
    assert descriptor["framework"] == "MXNET" and descriptor["precisionMode"] == "FP16"
    assert descriptor["inputs"] == [{"name": "data", "shape": [1, 3, 300, 300]}]
    graph = project.graph["nodeGraph"]
    interfaces = {n["interface"] for n in graph["nodes"]}
    assert {"panorama::abstract_rtsp_media_source.rtsp_v1_interface", "panorama::hdmi_data_sink.hdmi0"} <= interfaces
    params = {n["name"]: n for n in graph["nodes"] if n["interface"] in ("float32", "int32", "string", "boolean")}
    assert {"score_threshold", "counter_window", "site_id", "line_id", "mqtt_endpoint"} <= set(params)
    assert all("title" in p["decorator"] and "description" in p["decorator"] for p in params.values())


def test_schema_errors_name_file_and_json_path() -> None:
    graph = json.loads((REPO / GRAPH).read_text())
    graph["nodeGraph"]["nodes"][4]["value"] = "high"
    with pytest.raises(EdgeAppError, match=r"^g.json: nodeGraph\.nodes\[4\]\.value: 'high' is not of type 'number'"):
        manifests.validate(graph, "nodeGraph", "g.json")
    graph = json.loads((REPO / GRAPH).read_text())
    graph["nodeGraph"]["envelopeVersion"] = "2020-01-01"
    with pytest.raises(EdgeAppError, match=r"nodeGraph\.envelopeVersion"):
        manifests.validate(graph, "nodeGraph", "g.json")
    package = json.loads((REPO / CODE / "package.json").read_text())
    package["nodePackage"]["interfaces"][0]["inputs"][1]["type"] = "float64"
    with pytest.raises(EdgeAppError, match=r"nodePackage\.interfaces\[0\]\.inputs\[1\]\.type"):
        manifests.validate(package, "nodePackage", "p.json")
    descriptor = json.loads((REPO / MODEL / "descriptor.json").read_text())
    descriptor["mlModelDescriptor"]["framework"] = "CAFFE"
    with pytest.raises(EdgeAppError, match=r"mlModelDescriptor\.framework"):
        manifests.validate(descriptor, "mlModelDescriptor", "d.json")
    runtime = json.loads((REPO / CODE / "descriptor.json").read_text())
    del runtime["runtimeDescriptor"]["entry"]["name"]
    with pytest.raises(EdgeAppError, match=r"runtimeDescriptor\.entry: 'name' is a required property"):
        manifests.validate(runtime, "runtimeDescriptor", "d.json")


def _nodes(doc: dict) -> list[dict]:
    return doc["nodeGraph"]["nodes"]


def _edges(doc: dict) -> list[dict]:
    return doc["nodeGraph"]["edges"]


BROKEN: dict[str, tuple[str, Callable[[dict], None], str]] = {
    "unknown consumer port": (GRAPH, lambda d: _edges(d)[2].update(consumer="code_node.treshold"),
                              r"nodeGraph\.edges\[2\]\.consumer: 'code_node\.treshold': code_node has no input "
                              r"'treshold' \(inputs: video_in, score_threshold"),
    "unknown producer node": (GRAPH, lambda d: _edges(d)[0].update(producer="camera1.video_out"),
                              r"nodeGraph\.edges\[0\]\.producer: 'camera1\.video_out': no node named 'camera1'"),
    "producer port is not an output": (GRAPH, lambda d: _edges(d)[1].update(producer="code_node.video_in"),
                                       r"code_node has no output 'video_in' \(outputs: video_out\)"),
    "type mismatch": (GRAPH, lambda d: _edges(d)[2].update(producer="site_id"),
                      r"site_id \(string\) cannot feed code_node\.score_threshold \(float32\)"),
    "unconnected input": (GRAPH, lambda d: d["nodeGraph"].update(edges=_edges(d)[:-1]),
                          r"input\(s\) roi_polygons of code_node are not connected"),
    "undeclared interface": (GRAPH, lambda d: _nodes(d)[1].update(interface="123456789012::tray_counter_code.iface2"),
                             r"nodeGraph\.nodes\[1\]\.interface: no package declares interface"),
    "package not in graph": (GRAPH, lambda d: d["nodeGraph"].update(packages=d["nodeGraph"]["packages"][1:]),
                             r"comes from package '123456789012::tray_counter_code', which is not in nodeGraph"),
    "package missing from packages/": (GRAPH, lambda d: d["nodeGraph"]["packages"].append(
        {"name": "123456789012::people_counter", "version": "1.0"}),
        r"package '123456789012::people_counter' does not exist in packages/"),
    "package version mismatch": (GRAPH, lambda d: d["nodeGraph"]["packages"][1].update(version="2.0"),
                                 r"tray_detector_model is version 1\.0 in packages/, not 2\.0"),
    "duplicate node": (GRAPH, lambda d: _nodes(d).append(dict(_nodes(d)[4])),
                       r"node 'score_threshold' is defined twice"),
    "model shape vs parameter": (MODEL + "/descriptor.json",
                                 lambda d: d["mlModelDescriptor"]["inputs"][0].update(shape=[1, 3, 512, 512]),
                                 r"expected \[1, 3, 300, 300\] \(graph parameter model_input_size = 300\)"),
    "entry not where the Dockerfile copies": (CODE + "/descriptor.json",
                                              lambda d: d["runtimeDescriptor"]["entry"].update(name="/app/app.py"),
                                              r"runtimeDescriptor\.entry\.name: expected '/panorama/app\.py'"),
    "package name vs folder": (CODE + "/package.json", lambda d: d["nodePackage"].update(name="tray_code"),
                               r"nodePackage\.name: 'tray_code' differs from panorama\.json's 'tray_counter_code'"),
    "override of a fixed node": (OVERRIDES, lambda d: d["nodeGraphOverrides"]["nodeOverrides"].append(
        {"replace": "model_input_size", "with": [{"name": "plant_site_id"}]}),
        r"nodeOverrides\[4\]\.replace: node 'model_input_size' is not overridable"),
    "override with a wrong type": (OVERRIDES, lambda d: d["nodeGraphOverrides"]["nodeOverrides"][1].update(
        replace="score_threshold"), r"plant_site_id \(string\) cannot replace score_threshold \(float32\)"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_cross_reference_errors_are_one_precise_line(tmp_path: Path, case: str) -> None:
    rel, change, pattern = BROKEN[case]
    root = copy_project(tmp_path)
    edit_json(root / rel, change)
    with pytest.raises(EdgeAppError) as info:
        load_project(root)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(rel.split("/descriptor.json")[0].split("/package.json")[0])
    assert __import__("re").search(pattern, message), message


def test_cli_broken_graph_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    edit_json(root / GRAPH, lambda d: _edges(d)[2].update(consumer="code_node.treshold"))
    result = subprocess.run([str(REPO / ".venv" / "bin" / "edge-app"), "panorama", "validate", "--root", str(root)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith(f"error: {GRAPH}: nodeGraph.edges[2].consumer: 'code_node.treshold'")
    ok = subprocess.run([str(REPO / ".venv" / "bin" / "edge-app"), "panorama", "validate", "--root", str(REPO)],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: tray-counter"), ok.stderr


def test_code_package_inputs_are_exactly_what_the_node_reads() -> None:
    """The node calls ``self.inputs.<name>.get()`` for every NodeSettings field: an input missing from the
    package would be an AttributeError on the appliance, an extra one a parameter nobody reads."""
    from edge_app.panorama.node_counting import NodeSettings

    package = json.loads((REPO / CODE / "package.json").read_text())["nodePackage"]["interfaces"][0]
    inputs = {p["name"]: p["type"] for p in package["inputs"]}
    assert inputs.pop("video_in") == "media"
    python_type = {"float32": float, "int32": int, "string": str, "boolean": bool}
    assert set(inputs) == set(NodeSettings.model_fields)
    for name, kind in inputs.items():
        assert isinstance(NodeSettings().__getattribute__(name), python_type[kind]), name
    graph = json.loads((REPO / GRAPH).read_text())["nodeGraph"]
    defaults = {n["name"]: n["value"] for n in graph["nodes"] if n["name"] in inputs}
    assert NodeSettings.from_values(defaults).model_input_size == 300  # the graph's values are valid settings

"""The Panorama code node run locally (`edge-app panorama run-local`): the very entry module of the code
package, the local `panoramasdk`, graph.json's wiring and parameters, ONNX Runtime as the model node.

The slot detector and the generated bins video (see `app_fixtures`) make the true counts known (bins of 5
and 3 trays), so the tests check counts, MQTT messages and HDMI frames on exact numbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import paho.mqtt.client as mqtt
import pytest
from conftest import CACHE, REPO, Broker

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app_fixtures import bins_video, slot_detector_onnx  # noqa: E402
from panorama_helpers import copy_project, edit_json  # noqa: E402

from edge_app.errors import EdgeAppError  # noqa: E402
from edge_app.panorama.local_run import run_local  # noqa: E402

BINS = [5, 3]
GRAPH = "graphs/tray-counter/graph.json"
SLOT_PARAMS = ["model_input_size=64"]


@pytest.fixture(scope="module")
def assets() -> dict[str, Path]:
    folder = CACHE / "app"
    model, video = folder / "slot_detector.onnx", folder / "bins_5_3" / "video.mp4"
    if not model.is_file():
        slot_detector_onnx(model)
    if not video.is_file():
        bins_video(video, BINS)
    return {"model": model, "video": video}


def set_parameters(root: Path, **values: object) -> None:
    """Change parameter values in the project's graph.json (as a developer would)."""
    def change(doc: dict) -> None:
        for node in doc["nodeGraph"]["nodes"]:
            if node["name"] in values:
                node["value"] = values[node["name"]]
    edit_json(root / GRAPH, change)


def counting_project(tmp_path: Path) -> Path:
    root = copy_project(tmp_path / "project")
    set_parameters(root, counter_window=4, site_id="test-plant", line_id="line-7",
                   counter_params=json.dumps({"min_drop": 1, "smoothing": 3, "zero_frames": 5, "confirm_s": 0.5}))
    return root


def collect(broker: Broker, topic: str) -> tuple[mqtt.Client, list[dict], threading.Event]:
    got: list[dict] = []
    ready = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="panorama-test-sub")
    client.on_connect = lambda c, *_a: (c.subscribe(topic, qos=1), ready.set())
    client.on_message = lambda _c, _u, msg: got.append({"topic": msg.topic, **json.loads(msg.payload)})
    client.connect(broker.host, broker.port)
    client.loop_start()
    assert ready.wait(10)
    return client, got, ready


def test_node_counts_bins_publishes_them_and_draws_hdmi(tmp_path: Path, assets: dict[str, Path],
                                                        broker: Broker) -> None:
    root = counting_project(tmp_path)
    client, got, _ = collect(broker, "edge-app/test-plant/+/bin")
    out = tmp_path / "out"
    try:
        result = run_local(root, cameras=[f"line_cam={assets['video']}"], model=assets["model"], out_dir=out,
                           params=[*SLOT_PARAMS, f"mqtt_endpoint=127.0.0.1:{broker.port}"])
        deadline = threading.Event()
        for _ in range(50):
            if len(got) >= len(BINS):
                break
            deadline.wait(0.1)
    finally:
        client.loop_stop()
        client.disconnect()
    truth_frames = int(cv2.VideoCapture(str(assets["video"])).get(cv2.CAP_PROP_FRAME_COUNT))
    stats = result.streams["line_cam"]
    assert stats["bins"] == BINS and stats["global"] == sum(BINS) and stats["line"] == "line-7"
    assert stats["frames"] == truth_frames
    # graph values (window, site, line, counter JSON) and --param values (input size, MQTT) were used
    assert result.parameters["counter_window"] == 4 and result.parameters["model_input_size"] == 64
    assert sorted(m["trays"] for m in got) == sorted(BINS)
    assert {m["topic"] for m in got} == {"edge-app/test-plant/line-7/bin"}
    hdmi = result.hdmi["line_cam"]
    assert hdmi.frames == truth_frames and hdmi.labels == truth_frames
    assert hdmi.rects >= sum(n * 4 for n in BINS)  # every placed tray is boxed while it is visible
    assert hdmi.last_labels == ["line-7: bin 3 trays 0 | total 8 | bins 2"]
    video = cv2.VideoCapture(str(out / "hdmi" / "line_cam.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == truth_frames
    assert (out / "logs" / "app.log").read_text().count("tray counter node stopped after") == 1
    assert (out / "storage" / "outbox.db").is_file()


def test_score_threshold_parameter_is_honoured(tmp_path: Path, assets: dict[str, Path]) -> None:
    root = counting_project(tmp_path)
    result = run_local(root, cameras=[f"cam={assets['video']}"], model=assets["model"],
                       params=[*SLOT_PARAMS, "score_threshold=0.999"], work_dir=tmp_path / "work")
    assert result.streams["cam"]["bins"] == [] and result.hdmi["cam"].rects == 0
    assert result.hdmi["cam"].frames > 0


def test_several_cameras_get_their_own_lines(tmp_path: Path, assets: dict[str, Path]) -> None:
    root = counting_project(tmp_path)
    result = run_local(root, cameras=[f"cam_a={assets['video']}", f"cam_b={assets['video']}"], model=assets["model"],
                       params=[*SLOT_PARAMS, "line_id=line-1,line-2"], work_dir=tmp_path / "work", max_frames=40)
    assert {k: v["line"] for k, v in result.streams.items()} == {"cam_a": "line-1", "cam_b": "line-2"}
    assert result.streams["cam_a"]["frames"] == result.streams["cam_b"]["frames"] == 40
    assert result.streams["cam_a"]["bins"] == result.streams["cam_b"]["bins"] == [BINS[0]]


def test_default_graph_with_the_gluoncv_ssd_on_the_sim_video(tmp_path: Path) -> None:
    """graph.json as shipped (300x300 input): an exported untrained GluonCV SSD stands in for the compiled
    model; the node feeds it 'data' (1,3,300,300) and gets the 3 GluonCV outputs back."""
    from detector_models import exported

    root = copy_project(tmp_path / "project")
    (root / "sim" / "assets").mkdir(parents=True)
    (root / "sim" / "assets" / "demo_line1.mp4").symlink_to(REPO / "sim" / "assets" / "demo_line1.mp4")
    result = run_local(root, model=exported("ssd"), max_frames=2, out_dir=tmp_path / "out")
    assert result.model_version.startswith("untrained-ssd_300")
    assert result.parameters["model_input_size"] == 300 and result.parameters["score_threshold"] == 0.5
    assert result.streams["camera_node"]["frames"] == 2 and result.hdmi["camera_node"].frames == 2
    assert result.hdmi["camera_node"].rects > 0  # normalised, or the local SDK would have raised


def test_wrong_inputs_are_clear_errors(tmp_path: Path, assets: dict[str, Path]) -> None:
    root = copy_project(tmp_path / "project")
    with pytest.raises(EdgeAppError, match=r"--param treshold: code_node has no parameter input 'treshold'"):
        run_local(root, cameras=[f"c={assets['video']}"], model=assets["model"], params=["treshold=0.3"])
    with pytest.raises(EdgeAppError, match=r"--param counter_window: expected a int32 value, got 'eight'"):
        run_local(root, cameras=[f"c={assets['video']}"], model=assets["model"], params=["counter_window=eight"])
    with pytest.raises(EdgeAppError, match=r"its input is 64x64 but the graph parameter model_input_size is 300 "
                                           r"\(pass --param model_input_size=64"):
        run_local(root, cameras=[f"c={assets['video']}"], model=assets["model"])
    with pytest.raises(EdgeAppError, match=r"graph parameter: counter_params: Value error, expected a JSON object"):
        run_local(root, cameras=[f"c={assets['video']}"], model=assets["model"],
                  params=[*SLOT_PARAMS, "counter_params=[1]"], work_dir=tmp_path / "w")


def test_local_sdk_behaves_like_the_device_where_the_node_could_notice() -> None:
    sys.path.insert(0, str(REPO / "edge_app" / "panorama" / "local_sdk"))
    try:
        import panoramasdk
    finally:
        sys.path.pop(0)
        sys.modules.pop("panoramasdk", None)
    frame = panoramasdk.media(None, "cam", "file.mp4", (1, 0))
    frame.add_rect(0.1, 0.2, 0.3, 0.4)
    with pytest.raises(ValueError, match="normalised"):
        frame.add_rect(10, 20, 30, 40)
    ports = panoramasdk._Ports("input", {"video_in": panoramasdk._Port("video_in", getter=list)})
    with pytest.raises(AttributeError, match="declares no input port 'treshold'"):
        _ = ports.treshold


def test_cli_run_local_error_is_one_line(tmp_path: Path, assets: dict[str, Path]) -> None:
    result = subprocess.run([str(REPO / ".venv" / "bin" / "edge-app"), "panorama", "run-local", "--root", str(REPO),
                             "--camera", f"c={assets['video']}", "--model", str(assets["model"]),
                             "--param", "treshold=1", "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: --param treshold: code_node has no parameter input 'treshold' (parameters: counter_params, "
        "counter_window, line_id, model_input_size, mqtt_endpoint, roi_polygons, score_threshold, site_id)"]

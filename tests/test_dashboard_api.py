"""Dashboard API (`edge_app.dashboard`): every endpoint over a `DashboardState` fed like the app feeds it,
SSE and MJPEG through a real uvicorn server, the ROI editor's save path, 4xx cases, token auth, and one run
of `edge-app run --dashboard` on a video with known bins (counts read from the app, ROI applied live)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import yaml
from conftest import CACHE, free_port
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app_fixtures import FRAME_H, FRAME_W, bins_video  # noqa: E402
from dashboard_helpers import running_app, sse_events, wait_for, write_app_config  # noqa: E402

from edge_app.config import AppConfig, load_config  # noqa: E402
from edge_app.dashboard.frames import FrameView  # noqa: E402
from edge_app.dashboard.options import resolve_options  # noqa: E402
from edge_app.dashboard.runtime import DashboardServer  # noqa: E402
from edge_app.dashboard.server import create_app  # noqa: E402
from edge_app.dashboard.state import DashboardState, StreamInfo  # noqa: E402
from edge_app.detections import Detections  # noqa: E402
from edge_app.errors import EdgeAppError  # noqa: E402
from edge_app.events import AnomalyResult, BinCompleted, CountUpdate  # noqa: E402
from edge_app.roi import Roi  # noqa: E402

CONFIG_TEXT = """\
# plant config: this comment must survive the ROI editor
site: test-plant
state_dir: state
model:
  path: model.onnx   # not opened by these tests
streams:
  - name: line-1
    uri: video.mp4
    roi: [[0, 0], [320, 0], [320, 240], [0, 240]]
    counter: {window: 4, min_drop: 1}
  - name: cam-2
    uri: other.mp4
    line: line-2
mqtt: {enabled: false}
"""


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def frame_view(index: int = 7, *, local: int = 2, visible: int = 2, bin_id: int = 1) -> FrameView:
    image = np.full((FRAME_H, FRAME_W, 3), 40, np.uint8)
    cv2.rectangle(image, (20, 20), (80, 70), (255, 255, 255), -1)
    detections = Detections(np.array([[20, 20, 80, 70], [200, 150, 260, 200]], np.float32),
                            np.array([0.9, 0.3], np.float32), np.zeros(2, np.int32), ("tray",))
    return FrameView("line-1", index, image, detections, lambda d: d.above(0.5),
                     Roi([(0, 0), (160, 0), (160, 240), (0, 240)]), local, 10, bin_id, visible, 12.5)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "plant.yaml"
    path.write_text(CONFIG_TEXT, encoding="utf-8")
    return path


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock, tmp_path: Path) -> DashboardState:
    """Two streams; line-1 has a frame, a count history over 10 minutes, a bin, and an anomaly with a snapshot."""
    s = DashboardState([StreamInfo("line-1", "line-1", [(0, 0), (320, 0), (320, 240), (0, 240)]),
                        StreamInfo("cam-2", "line-2")], now=clock)
    s.set_health_source(lambda: {"uptime_s": 12.0, "model_version": "m-7", "streams": {
        "line-1": {"fps": 12.5, "frames": 300, "dropped_frames": 3, "latency_ms": {"p50": 20.0, "p95": 41.0}}},
        "inference_latency_ms": {"p50": 9.0, "p95": 15.0},
        "outbox": {"depth": 17, "bytes": 4096, "max_bytes": 1 << 20, "dropped_total": 0, "oldest_age_s": 3.5},
        "broker": {"transport": "mqtt", "connected": False, "host": "127.0.0.1", "port": 1883}})
    s.on_frame(frame_view(5, local=4, visible=4))   # the fullest frame of bin 1: its snapshot
    s.on_frame(frame_view(7, local=4, visible=0))
    for minute in range(11):                       # 2 trays per minute for 10 minutes: 120 trays/h
        s.on_events([CountUpdate("line-1", "line-1", minute * 60.0, local=2 * minute, global_count=10,
                                 bins_completed=1, bin_id=2, visible=1, wall_time=clock.t + minute * 60)])
    clock.t += 600
    s.on_events([BinCompleted("line-1", "line-1", 2, 24, 0.0, 600.0, 34, wall_time=clock.t)])
    snapshot = tmp_path / "anomaly.jpg"
    cv2.imwrite(str(snapshot), np.zeros((30, 40, 3), np.uint8))
    s.on_events([AnomalyResult("line-1", "line-1", 601.0, 0.8, True, 3.2, str(snapshot), wall_time=clock.t),
                 AnomalyResult("line-1", "line-1", 602.0, 0.1, False, 0.0, None, wall_time=clock.t)])
    return s


class ApplyRecorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list]] = []

    def __call__(self, stream: str, points: list) -> tuple[bool, str]:
        self.calls.append((stream, points))
        return True, "applied"


@pytest.fixture
def applied() -> ApplyRecorder:
    return ApplyRecorder()


@pytest.fixture
def client(state: DashboardState, config_path: Path, applied: ApplyRecorder) -> TestClient:
    return TestClient(create_app(state, config_path, apply_roi=applied, site="test-plant"))


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a decodable image"
    return image


# -- read endpoints ---------------------------------------------------------------------------------
def test_lines_report_counts_and_the_hourly_rate(client: TestClient) -> None:
    lines = client.get("/api/lines").json()
    assert [line["line"] for line in lines] == ["line-1", "line-2"]
    one = lines[0]
    assert (one["local"], one["global_count"], one["bins_completed"]) == (0, 34, 2)
    # 20 trays in 10 min (0 -> 20 while filling), then the bin of 24 completes: total 34 at t = 600 s
    assert one["trays_per_hour"] == pytest.approx((34 - 10) / 600 * 3600, abs=0.1)
    assert one["streams"][0]["has_frame"] and one["streams"][0]["fps"] == 12.5
    assert lines[1]["streams"][0]["stream"] == "cam-2" and not lines[1]["streams"][0]["has_frame"]


def test_line_detail_has_history_and_unknown_lines_are_404(client: TestClient) -> None:
    detail = client.get("/api/lines/line-1", params={"minutes": 60}).json()
    totals = [p["total"] for p in detail["history"]]
    assert totals[0] == 10 and totals[-1] == 34 and totals == sorted(totals)
    short = client.get("/api/lines/line-1", params={"minutes": 3}).json()["history"]
    assert 1 <= len(short) < len(detail["history"])  # only the last 3 minutes
    missing = client.get("/api/lines/line-9")
    assert missing.status_code == 404 and "line-9" in missing.json()["detail"] and "line-2" in missing.json()["detail"]
    assert client.get("/api/lines/line-1", params={"minutes": -5}).status_code == 422


def test_bins_newest_first_with_a_snapshot_of_the_fullest_frame(client: TestClient) -> None:
    bins = client.get("/api/bins").json()
    assert [(b["bin_id"], b["trays"], b["global_count"]) for b in bins] == [(2, 24, 34)]
    snapshot = client.get(bins[0]["snapshot_url"])
    assert snapshot.status_code == 200 and snapshot.headers["content-type"] == "image/jpeg"
    assert decode(snapshot.content).shape == (FRAME_H, FRAME_W, 3)
    assert client.get("/api/bins", params={"line": "line-2"}).json() == []
    assert client.get("/api/bins/999/snapshot.jpg").status_code == 404


def test_anomalies_and_their_snapshots(client: TestClient) -> None:
    rows = client.get("/api/anomalies").json()
    assert [(a["score"], a["is_anomalous"]) for a in rows] == [(0.1, False), (0.8, True)]
    assert rows[0]["snapshot_url"] is None
    assert decode(client.get(rows[1]["snapshot_url"]).content).shape == (30, 40, 3)
    assert client.get("/api/anomalies/12345/snapshot.jpg").status_code == 404


def test_health_is_the_apps_own(client: TestClient, state: DashboardState) -> None:
    health = client.get("/api/health").json()
    assert health["model_version"] == "m-7" and health["outbox"]["depth"] == 17
    assert health["broker"]["connected"] is False and health["streams"]["line-1"]["dropped_frames"] == 3
    assert health["inference_latency_ms"] == {"p50": 9.0, "p95": 15.0}

    def broken() -> dict:
        raise AssertionError("pipeline not built yet")

    state.set_health_source(broken)
    assert client.get("/api/health").json()["model_version"] == "unknown"  # a page, not a 500


def test_frames_annotated_and_raw(client: TestClient) -> None:
    annotated = client.get("/api/frame/line-1.jpg")
    raw = client.get("/api/frame/line-1.jpg", params={"raw": "true"})
    assert annotated.status_code == raw.status_code == 200
    assert annotated.headers["x-frame-index"] == "7" and annotated.headers["cache-control"] == "no-store"
    a, r = decode(annotated.content).astype(int), decode(raw.content).astype(int)
    assert a.shape == r.shape == (FRAME_H, FRAME_W, 3)
    assert np.abs(a[:22] - r[:22]).mean() > 10  # the header bar with the counts is drawn on the annotated one
    waiting = client.get("/api/frame/cam-2.jpg")
    assert waiting.status_code == 503 and waiting.headers["retry-after"] == "1"
    assert client.get("/api/frame/nope.jpg").status_code == 404


def test_index_page_and_static_files(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "EventSource(\"/api/events\")" in client.get("/static/app.js").text
    assert client.get("/api/site").json() == {"site": "test-plant"}


def test_openapi_documents_every_endpoint_with_models(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for path in ("/api/lines", "/api/lines/{line}", "/api/bins", "/api/anomalies", "/api/health",
                 "/api/frame/{stream}.jpg", "/api/stream/{stream}.mjpg", "/api/roi/{stream}", "/api/events"):
        assert path in doc["paths"], path
    assert set(doc["paths"]["/api/roi/{stream}"]) == {"get", "put"}
    schemas = doc["components"]["schemas"]
    assert {"LineStatus", "LineDetail", "BinEvent", "AnomalyEvent", "Health", "RoiBody", "RoiSaved"} <= set(schemas)
    lines_schema = doc["paths"]["/api/lines"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert lines_schema["items"]["$ref"].endswith("/LineStatus")


def test_history_is_bounded_ends_at_the_current_count_and_merges_cameras() -> None:
    from edge_app.dashboard.history import CountHistory, downsample, merge

    history = CountHistory(keep_s=100.0, sample_every_s=2.0)
    for i in range(1000):  # 10 updates a second for 100 s, one tray a second
        history.add(1000.0 + i / 10, i // 10, 0)
    times = [p[0] for p in history.points]
    assert len(times) <= 100 / 2 + 2 and times[-1] == 1000.0 + 99.9 and history.points[-1][1] == 99
    assert all(b - a >= 2.0 - 1e-9 for a, b in zip(times[:-2], times[1:-1], strict=True))
    assert history.rate_per_hour(1100.0) == pytest.approx(3600, rel=0.02)
    assert CountHistory().rate_per_hour(0.0) is None
    short = CountHistory()
    short.add(0.0, 0, 0)
    short.add(5.0, 3, 0)
    assert short.rate_per_hour(5.0) is None  # 5 s of data would extrapolate 3 trays into 2160/h

    merged = merge([[(0.0, 1, 0), (10.0, 5, 5)], [(5.0, 2, 0)]])
    assert merged == [(0.0, 1, 0), (5.0, 3, 0), (10.0, 7, 5)]
    points = [(float(i), i, i) for i in range(2000)]
    thinned = downsample(points, 100)
    assert len(thinned) <= 100 and thinned[0] == points[0] and thinned[-1] == points[-1]


# -- ROI editor ---------------------------------------------------------------------------------------
def test_roi_save_writes_the_config_keeps_a_backup_and_applies_live(client: TestClient, config_path: Path,
                                                                     applied: ApplyRecorder) -> None:
    before = client.get("/api/roi/line-1").json()
    assert before["points"] == [[0, 0], [320, 0], [320, 240], [0, 240]]
    assert (before["frame_width"], before["frame_height"]) == (FRAME_W, FRAME_H)

    polygon = [[10, 20], [300.5, 20], [300, 230], [15, 220]]
    response = client.put("/api/roi/line-1", json={"points": polygon})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["applied_live"] and body["points"] == polygon and applied.calls == [("line-1", [tuple(p) for p in
                                                                                                  polygon])]
    backup = Path(body["backup"])
    assert backup.name.startswith("plant.yaml.bak-") and backup.read_text(encoding="utf-8") == CONFIG_TEXT

    text = config_path.read_text(encoding="utf-8")
    assert "# plant config: this comment must survive the ROI editor" in text and "# not opened by these" in text
    assert "roi: [[10, 20], [300.5, 20], [300, 230], [15, 220]]" in text
    old, new = yaml.safe_load(CONFIG_TEXT), yaml.safe_load(text)
    old["streams"][0]["roi"] = polygon
    assert new == old  # nothing else changed
    assert load_config(config_path).streams[0].roi == [tuple(p) for p in polygon]
    assert client.get("/api/roi/line-1").json()["points"] == polygon
    assert not list(config_path.parent.glob(".*tmp"))  # no temporary file left behind


@pytest.mark.parametrize(("stream", "body", "status", "message"), [
    ("line-1", {"points": [[0, 0], [10, 10]]}, 422, "at least 3 points, got 2"),
    ("line-1", {"points": [[0, 0], ["ten", 10], [5, 5]]}, 422, "body.points.1.0"),
    ("line-1", {"points": [[0, 0], [10], [5, 5]]}, 422, "body.points.1"),
    ("line-1", {"points": [[0, 0], [400, 10], [5, 5]]}, 422, "point 1 (400, 10) lies outside the 320x240 frame"),
    ("line-1", {"points": [[0, 0], [10, -1], [5, 5]]}, 422, "outside the 320x240 frame"),
    ("line-1", {"roi": [[0, 0], [10, 10], [5, 5]]}, 422, "body.points: Field required"),
    ("line-9", {"points": [[0, 0], [10, 10], [5, 5]]}, 404, "unknown stream 'line-9' (streams: line-1, cam-2)"),
    ("cam-2", {"points": [[0, 0], [10, 10], [5, 5]]}, 409, "no frame from stream 'cam-2' yet"),
])
def test_bad_roi_requests_are_4xx_with_a_clear_message_and_change_nothing(
        client: TestClient, config_path: Path, applied: ApplyRecorder, stream: str, body: dict, status: int,
        message: str) -> None:
    response = client.put(f"/api/roi/{stream}", json=body)
    assert response.status_code == status and message in response.json()["detail"], response.text
    assert config_path.read_text(encoding="utf-8") == CONFIG_TEXT
    assert not list(config_path.parent.glob("*.bak-*")) and applied.calls == []


def test_a_config_the_app_would_refuse_is_never_installed(client: TestClient, config_path: Path) -> None:
    broken = CONFIG_TEXT.replace("window: 4", "window: ten")  # someone edited the file by hand meanwhile
    config_path.write_text(broken, encoding="utf-8")
    response = client.put("/api/roi/line-1", json={"points": [[0, 0], [10, 0], [10, 10]]})
    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"{config_path}: streams.0.counter.window")
    assert config_path.read_text(encoding="utf-8") == broken and not list(config_path.parent.glob("*.bak-*"))
    config_path.write_text(CONFIG_TEXT.replace("name: line-1", "name: line-7"), encoding="utf-8")
    gone = client.put("/api/roi/line-1", json={"points": [[0, 0], [10, 0], [10, 10]]})
    assert gone.status_code == 409 and "no stream named 'line-1'" in gone.json()["detail"]


# -- auth and options ---------------------------------------------------------------------------------
def test_token_auth_header_cookie_and_url(state: DashboardState, config_path: Path) -> None:
    client = TestClient(create_app(state, config_path, token="s3cret-token"))
    denied = client.get("/api/lines")
    assert denied.status_code == 401 and "token" in denied.json()["detail"]
    assert client.get("/", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    assert client.get("/static/app.js").status_code == 401
    assert client.get("/api/lines", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    page = client.get("/", params={"token": "s3cret-token"})
    assert page.status_code == 200 and "edge_dashboard_token" in page.headers["set-cookie"]
    assert client.get("/api/frame/line-1.jpg").status_code == 200  # the cookie now authorises <img> requests
    assert TestClient(create_app(state, config_path, token="s3cret-token")).get(
        "/api/health", params={"token": "nope"}).status_code == 401


def test_options_bind_loopback_by_default_and_require_a_token_elsewhere(config_path: Path) -> None:
    cfg = load_config(config_path)
    assert resolve_options(cfg, config_path) is None  # no --dashboard, no dashboard.port
    local = resolve_options(cfg, config_path, port=8080)
    assert (local.host, local.port, local.token) == ("127.0.0.1", 8080, None)
    with pytest.raises(EdgeAppError, match="--dashboard-host 0.0.0.0: .* set --dashboard-token"):
        resolve_options(cfg, config_path, port=8080, host="0.0.0.0")
    exposed = resolve_options(cfg, config_path, port=8080, host="0.0.0.0", token="long-enough")
    assert exposed.token == "long-enough"
    with pytest.raises(EdgeAppError, match="at least 8"):
        resolve_options(cfg, config_path, port=8080, token="short")
    from_file = AppConfig.model_validate({**yaml.safe_load(CONFIG_TEXT), "dashboard": {"port": 9001}})
    assert resolve_options(from_file, config_path).port == 9001


# -- a real server: SSE, MJPEG, a port in use ----------------------------------------------------------
@pytest.fixture
def server(state: DashboardState, config_path: Path) -> Iterator[DashboardServer]:
    srv = DashboardServer(create_app(state, config_path, frame_fps=20), "127.0.0.1", 0)
    srv.start()
    yield srv
    state.close()
    srv.stop()


def test_sse_sends_the_current_state_then_each_update(server: DashboardServer, state: DashboardState,
                                                      clock: Clock) -> None:
    with httpx.stream("GET", server.url + "api/events", timeout=15) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
        first = dict(next(events) for _ in range(4))
        assert {"lines", "bins", "anomalies", "health"} <= set(first)
        assert first["lines"][0]["global_count"] == 34 and first["bins"][0]["trays"] == 24
        assert first["health"]["model_version"] == "m-7"

        def feed() -> None:
            state.on_events([CountUpdate("line-1", "line-1", 700.0, 3, 34, 2, 3, 3, wall_time=clock.t + 1)])
            state.on_events([BinCompleted("line-1", "line-1", 3, 5, 600.0, 700.0, 39, wall_time=clock.t + 2)])

        threading.Timer(0.3, feed).start()
        seen: dict[str, object] = {}
        for name, data in events:
            seen[name] = data
            if name == "bins" and data:
                break
        assert seen["bins"][0]["bin_id"] == 3 and seen["bins"][0]["global_count"] == 39  # only the new one
        assert len(seen["bins"]) == 1


def test_mjpeg_streams_annotated_frames(server: DashboardServer, state: DashboardState) -> None:
    with httpx.stream("GET", server.url + "api/stream/line-1.mjpg", timeout=15) as response:
        assert response.headers["content-type"] == "multipart/x-mixed-replace; boundary=frame"
        buffer = b""
        chunks = response.iter_bytes()
        while buffer.count(b"--frame") < 2:
            buffer += next(chunks)
            if buffer.count(b"--frame") == 1 and b"\xff\xd9" in buffer:
                state.on_frame(frame_view(8))  # a new frame: a second part follows
    head, _, rest = buffer.partition(b"\r\n\r\n")
    assert b"Content-Type: image/jpeg" in head
    length = int(head.split(b"Content-Length: ")[1])
    assert decode(rest[:length]).shape == (FRAME_H, FRAME_W, 3)


def test_a_port_in_use_is_one_clear_error(server: DashboardServer, state: DashboardState, config_path: Path) -> None:
    with pytest.raises(EdgeAppError, match=f"--dashboard {server.port}: cannot listen on 127.0.0.1:{server.port}"):
        DashboardServer(create_app(state, config_path), "127.0.0.1", server.port)


# -- the app itself ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bins_5_3() -> Path:
    video = CACHE / "app" / "bins_5_3" / "video.mp4"
    if not video.is_file():
        bins_video(video, [5, 3])
    return video


def test_edge_app_run_dashboard_shows_the_apps_counts_and_applies_a_new_roi_live(tmp_path: Path,
                                                                                  bins_5_3: Path) -> None:
    config = write_app_config(tmp_path, bins_5_3)
    with running_app(config, free_port()) as url:
        bins = wait_for(lambda: (b := httpx.get(url + "api/bins", params={"limit": 200}).json()) and len(b) >= 4
                        and b, timeout=60)
        assert [b["trays"] for b in bins[::-1][:4]] == [5, 3, 5, 3]  # the looping video's exact bins
        # health is cached for 1 s and may have been computed before the pipeline existed: poll until it has the stream
        health = wait_for(lambda: (h := httpx.get(url + "api/health").json()).get("streams", {})
                          .get("line-1", {}).get("frames") and h)
        assert health["model_version"] == "test-slot-detector-1"  # (health is cached for 1 s: hence the wait)
        assert health["outbox"] is not None and health["broker"] is None  # publishing is off in this config
        line = httpx.get(url + "api/lines/line-1").json()
        assert line["global_count"] >= 16 and line["history"]

        # only the top-left cell's centre (40, 30) lies inside: from now on every bin counts 1 tray
        saved = httpx.put(url + "api/roi/line-1", json={"points": [[0, 0], [80, 0], [80, 60], [0, 60]]}).json()
        assert saved["applied_live"] and saved["live_points"] == [[0, 0], [80, 0], [80, 60], [0, 60]]
        mark = httpx.get(url + "api/bins").json()[0]["id"]  # the bin in progress now completes as mark + 1

        def after_switch() -> list[int]:
            rows = httpx.get(url + "api/bins", params={"limit": 200}).json()
            trays = [b["trays"] for b in rows if b["id"] > mark + 1]
            return trays if len(trays) >= 2 else []

        assert wait_for(after_switch, timeout=60)[:2] == [1, 1]  # bins counted wholly after the switch
    assert load_config(config).streams[0].roi == [(0, 0), (80, 0), (80, 60), (0, 60)]
    assert len(list(tmp_path.glob("config.yaml.bak-*"))) == 1

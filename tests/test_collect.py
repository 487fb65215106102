"""Frame collection: perceptual-hash near-duplicates, interval + ROI mask + sidecar, spool crash recovery, and
S3 upload through an outage without losing or double-uploading anything (moto S3)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import cv2
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws

from edge_app.collect.collector import FrameCollector, uri_without_credentials
from edge_app.collect.phash import DuplicateFilter, dhash, hamming, phash
from edge_app.collect.spool import Spool
from edge_app.collect.uploader import Uploader, transfer_config

BUCKET = "flywheel-test"


def scene(seed: int = 0, trays: int = 3) -> np.ndarray:
    """A bin seen from above with ``trays`` bright trays, plus sensor noise."""
    rng = np.random.default_rng(seed)
    img = np.full((240, 320, 3), 70, np.uint8)
    cv2.rectangle(img, (40, 30), (280, 210), (40, 90, 160), -1)
    for i in range(trays):
        x, y = 50 + (i % 3) * 75, 40 + (i // 3) * 80
        cv2.rectangle(img, (x, y), (x + 65, y + 70), (225, 225, 230), -1)
        cv2.circle(img, (x + 32, y + 35), 18, (60, 60, 170), -1)
    noise = rng.normal(0, 4, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def jpeg_roundtrip(img: np.ndarray, quality: int = 60) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)


@pytest.mark.parametrize("fn", [phash, dhash])
def test_hash_near_duplicates_close_changed_scene_far(fn) -> None:
    """Both ignore new sensor noise, a lighting change and JPEG; both see three more trays."""
    a = scene(0, trays=3)
    same = jpeg_roundtrip(np.clip(scene(1, trays=3).astype(int) + 8, 0, 255).astype(np.uint8))
    more = scene(0, trays=6)
    assert hamming(fn(a), fn(same)) <= 4
    assert hamming(fn(a), fn(more)) >= 8  # twice the default threshold
    assert 0 <= fn(a) < 2**64


def test_duplicate_filter_remembers_recent_frames() -> None:
    f = DuplicateFilter(threshold=4, memory=2)
    assert f.check(scene(0, 1))[0] is False
    assert f.check(scene(0, 4))[0] is False
    assert f.check(scene(5, 1))[0] is True  # like the first one, not the last one
    with pytest.raises(ValueError):
        DuplicateFilter(threshold=65)


def test_uri_without_credentials() -> None:
    assert uri_without_credentials("rtsp://admin:s3cret@10.0.0.5:554/h264?token=abc") == "rtsp://10.0.0.5:554/h264"
    assert uri_without_credentials("/videos/line1.mp4") == "/videos/line1.mp4"


def _clock(start: datetime):
    state = {"t": start}

    def now() -> datetime:
        state["t"] += timedelta(seconds=1)
        return state["t"]

    return now


def test_collector_interval_duplicates_mask_and_sidecar(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    roi = [(40, 30), (280, 30), (280, 210), (40, 210)]
    c = FrameCollector(spool, stream="cam-1", line="line-7", prefix="raw/plant", every_s=60, roi=roi,
                       camera={"uri": "rtsp://cam/1", "fps": 15.0}, clock=_clock(datetime(2026, 11, 23, tzinfo=UTC)))
    frames = [(0.0, scene(0, 2)), (30.0, scene(1, 5)), (60.0, scene(2, 2)), (125.0, scene(3, 2)),
              (190.0, scene(4, 5))]
    kept = [c.offer(img, t) for t, img in frames]
    # t=30 too soon; t=60 same content as t=0 -> duplicate; t=125 also a duplicate; t=190 new content
    assert [k is not None for k in kept] == [True, False, False, False, True]
    assert c.stats.as_dict() == {"seen": 5, "saved": 2, "too_soon": 1, "duplicates": 2, "spool_full": 0}
    items = spool.pending()
    assert len(items) == 2
    side = items[0].read_sidecar()
    assert side["stream"] == "cam-1" and side["line"] == "line-7" and side["stream_time_s"] == 0.0
    assert side["camera"] == {"width": 320, "height": 240, "uri": "rtsp://cam/1", "fps": 15.0}
    assert side["s3_key"].startswith("raw/plant/line-7/cam-1/2026-11-23/cam-1-20261123T")
    assert side["s3_key"].endswith(".jpg") and side["bytes"] == items[0].image.stat().st_size
    img = cv2.imread(str(items[0].image))
    assert img[5, 5].max() == 0 and img[230, 300].max() == 0  # outside the ROI: black
    assert img[100, 100].max() > 100  # inside: kept


def test_spool_recovers_from_crash_leftovers(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    item = spool.put("a", b"jpeg-a", {"s3_key": "p/a.jpg"})
    spool.put("b", b"jpeg-b", {"s3_key": "p/b.jpg"})
    (spool.pending_dir / "c.jpg").write_bytes(b"half written, no sidecar")
    (spool.pending_dir / ".x.jpg.123.tmp").write_bytes(b"temp")
    # crash between "sidecar moved to done/" and "JPEG deleted"
    (spool.done_dir / "a.json").write_bytes(item.sidecar.read_bytes())
    item.sidecar.unlink()
    d = spool.put("d", b"jpeg-d", {"s3_key": "p/d.jpg"})
    (spool.done_dir / "d.json").write_bytes(d.sidecar.read_bytes())  # crash after the journal record
    removed = Spool(tmp_path / "s").recovered
    assert sorted(removed) == [".x.jpg.123.tmp", "a.jpg", "c.jpg", "d.jpg", "d.json"]
    assert [i.name for i in spool.pending()] == ["b"]


def test_spool_full_refuses_new_frames_keeps_old(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_mb=0.001)  # ~1 KB
    assert spool.put("a", b"x" * 800, {"s3_key": "k/a.jpg"}) is not None
    assert spool.put("b", b"x" * 800, {"s3_key": "k/b.jpg"}) is None
    assert [i.name for i in spool.pending()] == ["a"]


class Outage:
    """Makes every S3 request fail with a connection error while ``down`` is set; counts PUTs per key."""

    def __init__(self, client) -> None:
        self.down = False
        self.puts: dict[str, int] = {}
        client.meta.events.register("before-send.s3", self._before_send)
        client.meta.events.register("before-parameter-build.s3.PutObject", self._count)
        client.meta.events.register("before-parameter-build.s3.CompleteMultipartUpload", self._count)
        self.multipart = 0
        client.meta.events.register("before-call.s3.CreateMultipartUpload", self._multipart)

    def _before_send(self, request, **_) -> None:
        if self.down:
            raise EndpointConnectionError(endpoint_url=request.url)

    def _count(self, params, **_) -> None:  # noqa: ANN001
        if not self.down:
            self.puts[params["Key"]] = self.puts.get(params["Key"], 0) + 1

    def _multipart(self, **_) -> None:
        self.multipart += 1


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1", config=Config(retries={"total_max_attempts": 1}))
        client.create_bucket(Bucket=BUCKET)
        yield client


def _fill(spool: Spool, n: int) -> list[str]:
    keys = []
    for i in range(n):
        key = f"collect/line-1/cam/2026-11-23/cam-{i}.jpg"
        spool.put(f"2026-{i:03d}", f"jpeg-{i}".encode() * 10, {"s3_key": key})
        keys.append(key)
    return keys


def test_outage_then_recovery_uploads_everything_exactly_once(tmp_path: Path, s3) -> None:
    spool = Spool(tmp_path / "spool")
    keys = _fill(spool, 3)
    outage = Outage(s3)
    uploader = Uploader(spool, s3, BUCKET)
    outage.down = True
    result = uploader.drain()
    assert not result.ok and "EndpointConnectionError" in result.error and result.uploaded == []
    assert len(spool.pending()) == 3  # nothing lost
    keys += _fill(spool, 0)
    outage.down = False
    # crash after the first item is in S3 but before the spool journals it
    original = spool.mark_uploaded
    calls = {"n": 0}

    def crash_once(item, extra=None):  # noqa: ANN001
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("power cut")
        original(item, extra)

    spool.mark_uploaded = crash_once  # type: ignore[method-assign]
    assert not uploader.drain().ok
    spool.mark_uploaded = original  # type: ignore[method-assign]
    final = uploader.drain()
    assert final.ok and len(final.uploaded) == 3 and final.skipped_objects == 2  # item 0: JPEG + sidecar
    assert spool.pending() == [] and len(spool.uploaded_names()) == 3
    for key in keys:
        assert outage.puts[key] == 1 and outage.puts[key[:-4] + ".json"] == 1
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert head["ContentType"] == "image/jpeg" and len(head["Metadata"]["sha256"]) == 64
    done = json.loads((spool.done_dir / "2026-000.json").read_text())
    assert done["s3_uri"] == f"s3://{BUCKET}/{keys[0]}" and "uploaded_at" in done


def test_large_frames_go_up_as_multipart(tmp_path: Path, s3) -> None:
    spool = Spool(tmp_path / "spool")
    big = np.random.default_rng(0).integers(0, 255, 6 * 2**20, dtype=np.uint8).tobytes()
    spool.put("big", big, {"s3_key": "collect/l/c/d/big.jpg"})
    outage = Outage(s3)
    result = Uploader(spool, s3, BUCKET, config=transfer_config(threshold=5 * 2**20, chunk=5 * 2**20)).drain()
    assert result.ok and outage.multipart == 1
    assert s3.get_object(Bucket=BUCKET, Key="collect/l/c/d/big.jpg")["Body"].read() == big


def test_collect_command_from_a_video_file(tmp_path: Path, s3) -> None:
    from edge_app.collect.run import CollectOptions, collect
    from edge_app.config import AppConfig

    video = tmp_path / "v.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (320, 240))
    for i in range(60):  # 6 s: trays appear every 2 s
        writer.write(scene(i, trays=1 + i // 20 * 2))
    writer.release()
    config = AppConfig.model_validate({"model": {"path": "m.onnx"}, "state_dir": str(tmp_path / "state"),
                                       "streams": [{"name": "cam-a", "line": "line-2", "uri": str(video)}]})
    result = collect(config, CollectOptions(every_s=1.0, bucket=BUCKET, prefix="raw"), s3=s3,
                     stop=threading.Event())
    stats = result["streams"]["cam-a"]
    assert stats["seen"] == 60 and stats["saved"] == 3 and stats["duplicates"] == 3
    assert result["pending"] == 0 and result["uploaded_total"] == 3
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="raw/line-2/cam-a/")["Contents"]
    assert sum(o["Key"].endswith(".jpg") for o in listed) == 3
    side = json.loads(s3.get_object(Bucket=BUCKET, Key=next(o["Key"] for o in listed
                                                            if o["Key"].endswith(".json")))["Body"].read())
    assert side["camera"]["fps"] == pytest.approx(10.0) and side["camera"]["uri"] == str(video)

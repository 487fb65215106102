"""``edge-app collect``: sample every configured stream into the spool while a thread drains it to S3."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_app.collect.collector import FrameCollector, uri_without_credentials
from edge_app.collect.spool import Spool
from edge_app.collect.uploader import DrainResult, Uploader
from edge_app.config import AppConfig, StreamConfig
from edge_app.errors import EdgeAppError

log = logging.getLogger(__name__)


@dataclass
class CollectOptions:
    every_s: float = 60.0
    prefix: str = "collect"
    bucket: str | None = None
    spool_dir: Path | None = None
    dup_threshold: int = 4
    jpeg_quality: int = 90
    max_frames: int | None = None
    spool_max_mb: float = 2048.0
    mask: bool = True


def _collect_stream(stream: StreamConfig, spool: Spool, options: CollectOptions, stop: threading.Event) -> dict:
    from edge_app.sources import open_source

    with open_source(stream, max_frames=options.max_frames) as source:
        done = threading.Event()

        def watch() -> None:
            # a live source can block waiting for a camera that is down: stop() ends its iteration from here
            while not done.is_set():
                if stop.wait(0.5):
                    source.stop()
                    return

        threading.Thread(target=watch, daemon=True, name=f"collect-stop-{stream.name}").start()
        collector = FrameCollector(spool, stream=stream.name, line=stream.line_id, prefix=options.prefix,
                                   every_s=options.every_s, roi=stream.roi if options.mask else None,
                                   dup_threshold=options.dup_threshold, jpeg_quality=options.jpeg_quality,
                                   camera={"uri": uri_without_credentials(stream.uri)})
        try:
            for frame in source:
                if stop.is_set():
                    break
                collector.camera["fps"] = source.fps  # a live camera reports it once connected
                collector.offer(frame.image, frame.timestamp)
        finally:
            done.set()
        return collector.stats.as_dict()


def collect(config: AppConfig, options: CollectOptions, *, stream_names: list[str] | None = None,
            s3: Any = None, stop: threading.Event | None = None) -> dict:
    """Collect from the chosen streams until they end (files) or ``stop``; upload when a bucket is given.

    Returns per-stream statistics and the final upload state (``pending`` > 0 means items wait in the spool
    for the next run: nothing is lost when S3 is unreachable).
    """
    streams = [s for s in config.streams if not stream_names or s.name in stream_names]
    unknown = sorted(set(stream_names or []) - {s.name for s in config.streams})
    if unknown:
        raise EdgeAppError(f"--stream: {', '.join(unknown)} not in the config (streams: "
                           f"{', '.join(s.name for s in config.streams)})")
    spool = Spool(options.spool_dir or Path(config.state_dir) / "collect", max_mb=options.spool_max_mb)
    stop = stop or threading.Event()
    uploader = upload_stop = upload_thread = None
    if options.bucket:
        if s3 is None:
            import boto3

            s3 = boto3.client("s3")
        uploader = Uploader(spool, s3, options.bucket)
        upload_stop = threading.Event()
        upload_thread = threading.Thread(target=uploader.run, args=(upload_stop,), daemon=True, name="collect-upload")
        upload_thread.start()
    results: dict[str, dict] = {}
    errors: list[str] = []

    def worker(stream: StreamConfig) -> None:
        try:
            results[stream.name] = _collect_stream(stream, spool, options, stop)
        except EdgeAppError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=worker, args=(s,), name=f"collect-{s.name}") for s in streams]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    except KeyboardInterrupt:
        stop.set()
        for t in threads:
            t.join()
    final = DrainResult()
    if uploader is not None:
        upload_stop.set()
        upload_thread.join()
        final = uploader.drain()  # one last pass for what the last seconds collected
    if errors:
        raise EdgeAppError(errors[0])
    return {"streams": results, "spool": str(spool.root), "pending": len(spool.pending()),
            "uploaded_total": len(spool.uploaded_names()), "last_upload_error": final.error}

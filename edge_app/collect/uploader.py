"""Drain the spool to S3: sidecar first, then the JPEG, each object checked before it is sent.

* Large objects go up as S3 multipart uploads: ``boto3``'s managed transfer (``upload_file`` with a
  ``TransferConfig``) switches to multipart above ``multipart_threshold`` and retries individual parts.
* The sidecar JSON is uploaded before the JPEG: the S3 event that feeds the labeling job fires on the JPEG
  (the notification filters on ``.jpg``), and by then its metadata is already next to it.
* Idempotent: keys are fixed when the frame is spooled (capture time + hash), and before each PUT a
  ``HeadObject`` looks for the object with the same ``sha256`` user metadata; if it is there the PUT is
  skipped. So a retry after a crash or a lost response never uploads an object twice (which would create a
  second ``ObjectCreated`` event and a second labeling task).
* An outage (connection errors, 5xx, throttling, expired credentials) ends the drain pass; the items stay in
  the spool and `run` retries with exponential back-off (`edge_app.sources.backoff.Backoff`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from edge_app.collect.spool import Spool, SpoolItem
from edge_app.sources.backoff import Backoff

log = logging.getLogger(__name__)

DEFAULT_MULTIPART_THRESHOLD = 8 * 2**20
DEFAULT_CHUNK = 8 * 2**20


def transfer_config(threshold: int = DEFAULT_MULTIPART_THRESHOLD, chunk: int = DEFAULT_CHUNK) -> Any:
    from boto3.s3.transfer import TransferConfig

    # two threads: the edge box has few cores and they are busy with inference
    return TransferConfig(multipart_threshold=threshold, multipart_chunksize=chunk, max_concurrency=2,
                          use_threads=True)


@dataclass
class DrainResult:
    uploaded: list[str] = field(default_factory=list)
    skipped_objects: int = 0
    """Objects already in S3 with the same sha256 (a retry after a crash or lost response)."""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Uploader:
    def __init__(self, spool: Spool, s3: Any, bucket: str, *, config: Any = None) -> None:
        self.spool = spool
        self.s3 = s3
        self.bucket = bucket
        self.config = config or transfer_config()

    def _already_there(self, key: str, sha256: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return head.get("Metadata", {}).get("sha256") == sha256

    def _put(self, path: str, key: str, sha256: str, content_type: str, result: DrainResult) -> None:
        if self._already_there(key, sha256):
            log.info("s3://%s/%s already uploaded, not sent again", self.bucket, key)
            result.skipped_objects += 1
            return
        self.s3.upload_file(path, self.bucket, key, ExtraArgs={"ContentType": content_type,
                                                               "Metadata": {"sha256": sha256}},
                            Config=self.config)

    def upload(self, item: SpoolItem, result: DrainResult) -> None:
        sidecar = item.read_sidecar()
        key = sidecar["s3_key"]
        side_sha = hashlib.sha256(item.sidecar.read_bytes()).hexdigest()
        self._put(str(item.sidecar), key[: -len(".jpg")] + ".json", side_sha, "application/json", result)
        self._put(str(item.image), key, sidecar["sha256"], "image/jpeg", result)
        self.spool.mark_uploaded(item, {"uploaded_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                                        "s3_uri": f"s3://{self.bucket}/{key}"})
        result.uploaded.append(item.name)

    def drain(self, limit: int | None = None) -> DrainResult:
        """Upload pending items oldest first; stop at the first failure (the rest waits for the next pass)."""
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        result = DrainResult()
        for item in self.spool.pending()[:limit]:
            try:
                self.upload(item, result)
            except (BotoCoreError, ClientError, S3UploadFailedError, OSError) as exc:
                result.error = f"{type(exc).__name__}: {exc}"
                log.warning("upload of %s failed, kept in the spool: %s", item.name, result.error)
                break
        return result

    def run(self, stop: threading.Event, *, idle_s: float = 5.0, backoff: Backoff | None = None) -> None:
        """Drain until ``stop`` is set: every ``idle_s`` when healthy, with back-off after failures."""
        backoff = backoff or Backoff(2.0, 300.0)
        while not stop.is_set():
            result = self.drain()
            if result.ok:
                backoff.reset()
                stop.wait(idle_s)
            else:
                stop.wait(backoff.next_delay())

"""Fetch ``s3://`` manifests and images through boto3, with a local cache.

A Ground Truth job leaves its output manifest and the images in S3. Training machines read them many times,
so objects are downloaded once into ``cache_dir/<bucket>/<key>`` and re-downloaded only when the object's
ETag changed (one cheap ``HeadObject`` per use). Writes are atomic (temp file + ``os.replace``) so an
interrupted download never leaves a half file that later looks valid.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from edge_app.errors import EdgeAppError

DEFAULT_CACHE_DIR = Path(os.environ.get("EDGE_APP_CACHE", Path.home() / ".cache" / "edge-app" / "s3"))


def is_s3_uri(path: str) -> bool:
    return str(path).startswith("s3://")


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``."""
    rest = uri[len("s3://"):]
    bucket, _, key = rest.partition("/")
    if not bucket or not key:
        raise EdgeAppError(f"{uri}: expected s3://bucket/key")
    return bucket, key


def fetch(uri: str, cache_dir: Path | None = None, client=None) -> Path:
    """Local path of an S3 object, downloading it into the cache when missing or changed."""
    import boto3
    import botocore.exceptions

    bucket, key = split_s3_uri(uri)
    cache_dir = Path(cache_dir or DEFAULT_CACHE_DIR)
    local = cache_dir / bucket / key
    etag_file = local.with_name(local.name + ".etag")
    s3 = client or boto3.client("s3")
    try:
        etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
        if local.is_file() and etag_file.is_file() and etag_file.read_text() == etag:
            return local
        local.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=".part-")
        with os.fdopen(fd, "wb") as out:
            s3.download_fileobj(bucket, key, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, local)
        etag_file.write_text(etag)
    except botocore.exceptions.ClientError as exc:
        raise EdgeAppError(f"{uri}: cannot read from S3 ({exc.response.get('Error', {}).get('Code', exc)})") from None
    except botocore.exceptions.NoCredentialsError:
        raise EdgeAppError(f"{uri}: no AWS credentials to read it (configure a profile or copy it locally)") from None
    return local


def read_manifest_text(path: str, cache_dir: Path | None = None) -> str:
    """UTF-8 text of a local or ``s3://`` manifest (Ground Truth writes raw UTF-8, e.g. Korean keys)."""
    local = fetch(path, cache_dir) if is_s3_uri(path) else Path(path)
    try:
        return local.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise EdgeAppError(f"{path}: not UTF-8 text (byte {exc.start})") from None
